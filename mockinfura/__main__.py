from mockinfura.cli import main

raise SystemExit(main())

"""The control plane (`/_mock/`, spec interface.md section 4) as Python calls over HTTP.

Usable against any running mockinfura, not only the in-process one:

    admin = Admin("http://127.0.0.1:8545")
    snapshot = admin.snapshot("sepolia")
    ...
    admin.revert(snapshot, network="sepolia")
"""

from __future__ import annotations

from typing import Any

import httpx

CONTROL_TOKEN_HEADER = "X-Mockinfura-Control-Token"
ADMIN_TIMEOUT_SECONDS = 60.0


class AdminError(RuntimeError):
    """A control-plane call that failed: an HTTP error status or a JSON-RPC error from `/_mock/rpc`."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def _no_delay_transport() -> httpx.HTTPTransport:
    import socket

    # Without TCP_NODELAY a loopback request can wait 40 ms on delayed ACKs.
    return httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])


class Admin:
    """`snapshot`, `revert`, `mine`, `set_balance`, `requests`, `usage`, `clock`, `reset`, `keys`, `rpc`."""

    def __init__(self, base_url: str, *, control_token: str | None = None, client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {CONTROL_TOKEN_HEADER: control_token} if control_token else {}
        # trust_env=False: an HTTP(S)_PROXY from the environment must never carry loopback calls.
        self._client = client or httpx.Client(
            timeout=ADMIN_TIMEOUT_SECONDS, trust_env=False, headers=headers, transport=_no_delay_transport()
        )
        self.clock = ClockAdmin(self)
        self.keys = KeysAdmin(self)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                allow: tuple[int, ...] = ()) -> httpx.Response:
        """One control-plane request; an error status (other than those in ALLOW) raises AdminError."""
        response = self._client.request(method, f"{self.base_url}/_mock/{path.lstrip('/')}", json=json, params=params)
        if response.status_code >= 400 and response.status_code not in allow:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            detail = body.get("error", body) if isinstance(body, dict) else body
            problems = body.get("problems") if isinstance(body, dict) else None
            message = f"{method} /_mock/{path.lstrip('/')}: HTTP {response.status_code}: {detail}"
            if problems:
                message += "\n" + "\n".join(str(p) for p in problems)
            raise AdminError(message, status=response.status_code, body=body)
        return response

    def rpc(self, method: str, params: list[Any] | dict[str, Any] | None = None, *, network: str = "mainnet") -> Any:
        """One JSON-RPC call on `/_mock/rpc/<network>` (no auth, test controls enabled); its result."""
        payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params if params is not None else []}
        reply = self.request("POST", f"rpc/{network}", json=payload).json()
        if "error" in reply:
            error = reply["error"]
            raise AdminError(f"{method} on {network}: {error.get('code')} {error.get('message')}", body=error)
        return reply.get("result")

    # ------------------------------------------------------------------ chains

    def health(self) -> dict[str, Any]:
        return self.request("GET", "health").json()

    def snapshot(self, network: str = "mainnet") -> str:
        """A snapshot id of NETWORK's chain, for `revert`."""
        return self.rpc("evm_snapshot", network=network)

    def revert(self, snapshot_id: str, network: str = "mainnet") -> bool:
        """Back to the snapshot; False when the id is unknown (as anvil, a snapshot is used up by its revert)."""
        return bool(self.rpc("evm_revert", [snapshot_id], network=network))

    def mine(self, blocks: int = 1, network: str = "mainnet") -> None:
        self.rpc("evm_mine", [{"blocks": blocks}], network=network)

    def set_balance(self, address: str, wei: int, network: str = "mainnet") -> None:
        self.rpc("anvil_setBalance", [address, hex(wei)], network=network)

    def reset(self) -> None:
        """Every chain back to genesis; journal and usage cleared; keys kept."""
        self.request("POST", "reset")

    # ------------------------------------------------------------------ journal and usage

    def requests(self, *, key: str | None = None, network: str | None = None, method: str | None = None,
                 decision: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """The request journal, newest last, filtered as `GET /_mock/requests?...`."""
        filters = {"key": key, "network": network, "method": method, "decision": decision, "limit": limit}
        return self.request("GET", "requests", params={k: v for k, v in filters.items() if v is not None}).json()

    def clear_requests(self) -> None:
        self.request("DELETE", "requests")

    def usage(self) -> dict[str, Any]:
        return self.request("GET", "usage").json()


class ClockAdmin:
    """The server clock (JWT exp/nbf/iat, credit days): `advance`, `set`, `reset`, `now`."""

    def __init__(self, admin: Admin) -> None:
        self._admin = admin

    def get(self) -> dict[str, Any]:
        return self._admin.request("GET", "clock").json()

    def now(self) -> float:
        return float(self.get()["now"])

    def advance(self, seconds: float) -> dict[str, Any]:
        return self._admin.request("POST", "clock", json={"advance": seconds}).json()

    def set(self, unix_time: float) -> dict[str, Any]:
        return self._admin.request("POST", "clock", json={"set": unix_time}).json()

    def reset(self) -> dict[str, Any]:
        return self._admin.request("POST", "clock", json={"reset": True}).json()


class KeysAdmin:
    """API keys at run time, in the config's `api_keys` shape: `add`, `get`, `put`, `remove`, `list`."""

    def __init__(self, admin: Admin) -> None:
        self._admin = admin

    def list(self) -> list[dict[str, Any]]:
        return self._admin.request("GET", "keys").json()

    def add(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Create a key (a random one when ENTRY has no "key"); the reply adds JWT key ids and fingerprints."""
        return self._admin.request("POST", "keys", json=entry).json()

    def get(self, key: str) -> dict[str, Any] | None:
        """The key, or None when there is none."""
        response = self._admin.request("GET", f"keys/{key}", allow=(404,))
        return None if response.status_code == 404 else response.json()

    def put(self, key: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Create or replace KEY."""
        return self._admin.request("PUT", f"keys/{key}", json=entry).json()

    def remove(self, key: str, *, missing_ok: bool = False) -> bool:
        """Delete KEY; True if it existed. A missing key raises KeyError unless MISSING_OK."""
        response = self._admin.request("DELETE", f"keys/{key}", allow=(404,))
        if response.status_code == 404:
            if missing_ok:
                return False
            raise KeyError(key)
        return True

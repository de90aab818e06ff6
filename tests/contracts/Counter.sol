// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

contract Counter {
    uint256 public count;
    address public owner;
    event Incremented(address indexed by, uint256 newCount);
    error NotOwner(address caller);

    constructor(uint256 start) {
        count = start;
        owner = msg.sender;
    }

    function increment() external {
        count += 1;
        emit Incremented(msg.sender, count);
    }

    function fail(string calldata reason) external pure {
        require(false, reason);
    }

    function onlyOwner() external view returns (bool) {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        return true;
    }

    function now_() external view returns (uint256) {
        return block.timestamp;
    }
}

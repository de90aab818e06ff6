"""One network's in-memory EVM chain (py-evm through eth-tester's backend), answering JSON-RPC calls.

The chain knows nothing of API keys or HTTP: `EvmChain.call(method, params)` returns a JSON-ready
result or raises RpcError. It is not thread-safe: the registry runs every call of one chain on that
chain's single worker thread (one writer at a time); different chains run side by side.

Replies are formatted here, from py-evm's objects, the way geth formats them (camelCase keys, hex
quantities, lowercase addresses), without web3's provider layers.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mockinfura.rpc import params as p
from mockinfura.rpc.errors import (
    EXECUTION_REVERTED,
    INVALID_INPUT,
    LIMIT_EXCEEDED,
    RpcError,
    invalid_params,
    method_not_found,
)

CLIENT_VERSION = "mockinfura/0.1.0/py-evm"
GET_LOGS_MAX_RESULTS = 10_000  # infura.md 3 [doc]
FILTER_TIMEOUT_SECONDS = 15 * 60  # infura.md 3 [doc]: a filter not polled for 15 minutes expires
ALLOW_UNPROTECTED_TRANSACTIONS = False  # like geth's default: pre-EIP-155 transactions are refused over RPC
ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
ZERO_ADDRESS = b"\x00" * 20
RECEIPTS_CACHE_BLOCKS = 1024  # recent blocks whose formatted receipts are kept


@functools.lru_cache(maxsize=8)
def dev_account_keys(mnemonic: str, accounts: int) -> tuple[Any, ...]:
    """The dev accounts' keys, m/44'/60'/0'/0/i. Derived once per mnemonic (about 13 ms a key in pure Python)."""
    from eth_tester.backends.pyevm.main import get_account_keys_from_mnemonic

    return tuple(get_account_keys_from_mnemonic(mnemonic, quantity=accounts, hd_path="m/44'/60'/0'/0"))


def hx(value: int) -> str:
    return hex(value)


def hb(value: bytes) -> str:
    return "0x" + value.hex()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def to_rpc(value: Any) -> Any:
    """eth-tester's serialized dicts (snake_case, Python values) to JSON-RPC (camelCase, hex)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {_camel(k): to_rpc(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_rpc(v) for v in value]
    return value


@dataclass
class _Filter:
    kind: str  # "logs", "blocks" or "pending"
    owner: str
    last_poll: float
    criteria: dict[str, Any] = field(default_factory=dict)
    next_block: int = 0  # first block not yet reported
    pending: list[str] = field(default_factory=list)


@dataclass
class _Snapshot:
    head_hash: bytes
    queued: dict[bytes, dict[int, tuple[bytes, Any]]]
    time_offset: float
    next_timestamp: int | None


class EvmChain:
    """A py-evm chain with a node's habits: auto-mining, a nonce-ordered pool, filters, snapshots."""

    inline_safe = True  # eth_chainId, net_version and eth_blockNumber read plain attributes

    def __init__(
        self,
        chain_id: int,
        *,
        mnemonic: str,
        accounts: int,
        balance: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from mockinfura.chains import import_pyevm

        import_pyevm()
        from eth.chains.base import MiningChain
        from eth.db import get_db_backend
        from eth_tester.backends.pyevm import main as pyevm
        from eth_tester.backends.pyevm.main import PyEVMBackend
        from eth_utils.toolz import assoc

        self.chain_id = chain_id
        self.clock = clock
        self._pyevm = pyevm
        keys = dev_account_keys(mnemonic, accounts)
        self.dev_keys = {k.public_key.to_canonical_address(): k for k in keys}
        genesis_state = {
            address: {"balance": balance, "storage": {}, "code": b"", "nonce": 0} for address in self.dev_keys
        }
        genesis_params = pyevm.get_default_genesis_params(overrides={"timestamp": int(clock())})

        class NetworkChain(MiningChain):
            vm_configuration = ((0, pyevm.PragueVM),)

            def create_header_from_parent(self, parent_header, **header_params):  # noqa: ANN001
                return super().create_header_from_parent(
                    parent_header, **assoc(header_params, "gas_limit", parent_header.gas_limit)
                )

            def get_transaction_builder(self):  # noqa: ANN202
                return super().get_vm().get_transaction_builder()

        NetworkChain.chain_id = chain_id
        self._chain_class = NetworkChain
        backend = PyEVMBackend.__new__(PyEVMBackend)
        backend.account_keys = keys
        backend.chain = NetworkChain.from_genesis(get_db_backend(), genesis_params, genesis_state)
        self.backend = backend
        self.genesis_hash = self._head().hash
        self._queued: dict[bytes, dict[int, tuple[bytes, Any]]] = {}  # sender -> nonce -> (hash, tx)
        self._time_offset = 0.0
        self._next_timestamp: int | None = None
        self._snapshots: dict[int, _Snapshot] = {}
        self._snapshot_counter = 0
        self._filters: dict[str, _Filter] = {}
        self._tx_index: dict[bytes, int] = {}  # mined transaction hash -> block number
        self._receipts_cache: dict[bytes, list[dict[str, Any]]] = {}  # block hash -> formatted receipts
        self.block_number = 0
        self.listeners: list[Callable[[str, Any], None]] = []  # ("block", n) / ("pending", hash)
        self._refresh_head()

    # ------------------------------------------------------------------ chain plumbing

    @property
    def _chain(self) -> Any:
        return self.backend.chain

    def _head(self) -> Any:
        """The latest mined block (py-evm's `get_block()` is the pending one)."""
        chain = self._chain
        return chain.get_canonical_block_by_number(max(0, chain.get_block().number - 1))

    def _refresh_head(self) -> None:
        self.block_number = self._head().number

    def _timestamp_for_next_block(self) -> int:
        parent = self._head().header.timestamp
        if self._next_timestamp is not None:
            return max(self._next_timestamp, parent + 1)
        return max(parent + 1, int(time.time() + self._time_offset))

    def _prepare_pending_header(self) -> None:
        chain = self._chain
        chain.header = chain.header.copy(timestamp=self._timestamp_for_next_block())

    def _mine(self, transaction: Any = None) -> Any:
        """Mine the pending block, or a block of TRANSACTION alone (one VM, one state build: mine_all)."""
        chain = self._chain
        self._prepare_pending_header()
        kwargs: dict[str, Any] = {"coinbase": ZERO_ADDRESS, "mix_hash": os.urandom(32)}
        if transaction is not None:
            kwargs["blob_gas_used"] = self._pyevm.get_total_blob_gas(transaction)
            block = chain.mine_all([transaction], **kwargs)[0].imported_block
        else:
            pending_txs = chain.get_block().transactions
            kwargs["blob_gas_used"] = sum(self._pyevm.get_total_blob_gas(tx) for tx in pending_txs)
            block = chain.mine_block(**kwargs)
        if self._next_timestamp is not None:
            self._time_offset = block.header.timestamp - time.time()
            self._next_timestamp = None
        for tx in block.transactions:
            self._tx_index[tx.hash] = block.number
        self._refresh_head()
        for listener in list(self.listeners):
            listener("block", block.number)
        return block

    def _resolve_block(self, block: int | str | bytes) -> Any:
        """The mined block named by a block id, or None."""
        chain = self._chain
        if isinstance(block, bytes):
            try:
                found = chain.get_block_by_hash(block)
            except Exception:  # HeaderNotFound and friends
                return None
            if found.number > self.block_number:
                return None
            canonical = chain.get_canonical_block_by_number(found.number)
            return found if canonical.hash == found.hash else None
        if block == "earliest":
            return chain.get_canonical_block_by_number(0)
        if isinstance(block, str):  # latest, pending, safe, finalized: the head
            return self._head()
        if block > self.block_number:
            return None
        return chain.get_canonical_block_by_number(block)

    def _block_or_fail(self, block: int | str | bytes) -> Any:
        found = self._resolve_block(block)
        if found is None:
            raise RpcError(INVALID_INPUT, "header not found")
        return found

    def _state_at(self, block: int | str | bytes) -> Any:
        header = self._block_or_fail(block).header
        return self._chain.get_vm(at_header=header).state

    # ------------------------------------------------------------------ dispatch

    PUBLIC_METHODS = frozenset({
        "eth_chainId", "net_version", "net_listening", "net_peerCount", "web3_clientVersion", "web3_sha3",
        "eth_syncing", "eth_mining", "eth_hashrate", "eth_blockNumber", "eth_gasPrice", "eth_maxPriorityFeePerGas",
        "eth_blobBaseFee", "eth_feeHistory", "eth_getBalance", "eth_getCode", "eth_getStorageAt",
        "eth_getTransactionCount", "eth_getBlockByNumber", "eth_getBlockByHash",
        "eth_getBlockTransactionCountByNumber", "eth_getBlockTransactionCountByHash",
        "eth_getUncleCountByBlockNumber", "eth_getUncleCountByBlockHash", "eth_getUncleByBlockNumberAndIndex",
        "eth_getUncleByBlockHashAndIndex", "eth_getTransactionByHash", "eth_getTransactionByBlockNumberAndIndex",
        "eth_getTransactionByBlockHashAndIndex", "eth_getTransactionReceipt", "eth_getBlockReceipts", "eth_call",
        "eth_estimateGas", "eth_sendRawTransaction", "eth_getLogs", "eth_newFilter", "eth_newBlockFilter",
        "eth_newPendingTransactionFilter", "eth_getFilterChanges", "eth_getFilterLogs", "eth_uninstallFilter",
        "eth_accounts", "eth_createAccessList", "eth_getProof",
    })
    FILTER_METHODS = frozenset({
        "eth_newFilter", "eth_newBlockFilter", "eth_newPendingTransactionFilter", "eth_getFilterChanges",
        "eth_getFilterLogs", "eth_uninstallFilter",
    })
    CONTROL_METHODS = frozenset({
        "evm_snapshot", "evm_revert", "evm_mine", "evm_increaseTime", "evm_setNextBlockTimestamp",
        "anvil_setBalance", "hardhat_setBalance", "anvil_setCode", "hardhat_setCode", "anvil_setNonce",
        "hardhat_setNonce", "anvil_setStorageAt", "hardhat_setStorageAt", "eth_sendTransaction",
    })

    def call(self, method: str, params: Any, *, owner: str = "", control: bool = False) -> Any:
        """Answer one JSON-RPC call. `control` enables the test controls and the dev accounts."""
        if method in self.PUBLIC_METHODS or (control and method in self.CONTROL_METHODS):
            handler = getattr(self, "_" + method)
            try:
                if method in self.FILTER_METHODS:  # filters belong to the API key that made them
                    return handler(params, owner)
                if method == "eth_accounts":
                    return handler(params, control)
                return handler(params)
            except RpcError:
                raise
            except Exception as exc:  # py-evm's own validation errors are the caller's; anything else goes up
                from eth_utils import ValidationError  # (the gateway answers it with -32603)

                if isinstance(exc, ValidationError):
                    raise RpcError(INVALID_INPUT, str(exc)) from None
                raise
        raise method_not_found(method)

    # ------------------------------------------------------------------ simple reads

    def _eth_chainId(self, params: Any) -> str:
        return hx(self.chain_id)

    def _net_version(self, params: Any) -> str:
        return str(self.chain_id)

    def _net_listening(self, params: Any) -> bool:
        return True

    def _net_peerCount(self, params: Any) -> str:
        return "0x0"

    def _web3_clientVersion(self, params: Any) -> str:
        return CLIENT_VERSION

    def _web3_sha3(self, params: Any) -> str:
        from eth_utils import keccak

        (value,) = p.positional(params, "web3_sha3", 1)
        return hb(keccak(p.data(value, "data")))

    def _eth_syncing(self, params: Any) -> bool:
        return False

    def _eth_mining(self, params: Any) -> bool:
        return False

    def _eth_hashrate(self, params: Any) -> str:
        return "0x0"

    def _eth_accounts(self, params: Any, control: bool) -> list[str]:
        # Infura holds no keys: eth_accounts is []. The control plane lists the dev accounts.
        return [hb(a) for a in self.dev_keys] if control else []

    def _eth_blockNumber(self, params: Any) -> str:
        return hx(self.block_number)

    def _base_fee(self) -> int:
        return self._chain.header.base_fee_per_gas

    def _eth_gasPrice(self, params: Any) -> str:
        return hx(self._base_fee() + 10**9)

    def _eth_maxPriorityFeePerGas(self, params: Any) -> str:
        return hx(10**9)

    def _eth_blobBaseFee(self, params: Any) -> str:
        return hx(self._chain.get_vm().state.blob_base_fee)

    def _eth_feeHistory(self, params: Any) -> dict[str, Any]:
        count_param, newest_param, percentiles = p.positional(params, "eth_feeHistory", 2, 1)
        if isinstance(count_param, int) and not isinstance(count_param, bool):
            count = count_param
        else:
            count = p.quantity(count_param, "blockCount")
        if not 1 <= count <= 1024:
            raise invalid_params("invalid blockCount: must be between 1 and 1024")
        newest = self._block_or_fail(p.block_id(newest_param, "newestBlock"))
        if percentiles is not None and (
            not isinstance(percentiles, list) or not all(isinstance(x, (int, float)) for x in percentiles)
        ):
            raise invalid_params("invalid rewardPercentiles: expected an array of numbers")
        oldest = max(0, newest.number - count + 1)
        headers = [self._chain.get_canonical_block_header_by_number(n) for n in range(oldest, newest.number + 1)]
        next_base_fee = self._chain.header.base_fee_per_gas if newest.number == self.block_number else (
            self._chain.get_canonical_block_header_by_number(newest.number + 1).base_fee_per_gas
        )
        result: dict[str, Any] = {
            "oldestBlock": hx(oldest),
            "baseFeePerGas": [hx(h.base_fee_per_gas) for h in headers] + [hx(next_base_fee)],
            "gasUsedRatio": [h.gas_used / h.gas_limit for h in headers],
        }
        if percentiles:
            result["reward"] = [[hx(10**9) if h.gas_used else "0x0" for _ in percentiles] for h in headers]
        return result

    # ------------------------------------------------------------------ account state

    def _eth_getBalance(self, params: Any) -> str:
        account, block = p.positional(params, "eth_getBalance", 1, 1)
        return hx(self._state_at(p.block_id(block)).get_balance(p.address(account)))

    def _eth_getCode(self, params: Any) -> str:
        account, block = p.positional(params, "eth_getCode", 1, 1)
        return hb(self._state_at(p.block_id(block)).get_code(p.address(account)))

    def _eth_getStorageAt(self, params: Any) -> str:
        account, slot, block = p.positional(params, "eth_getStorageAt", 2, 1)
        position = _slot(slot)
        value = self._state_at(p.block_id(block)).get_storage(p.address(account), position)
        return hb(value.to_bytes(32, "big"))

    def _eth_getTransactionCount(self, params: Any) -> str:
        account, block_param = p.positional(params, "eth_getTransactionCount", 1, 1)
        sender = p.address(account)
        block = p.block_id(block_param)
        nonce = self._state_at(block).get_nonce(sender)
        if block == "pending":  # held transactions count, as a node's pool does
            queued = self._queued.get(sender, {})
            while nonce in queued:
                nonce += 1
        return hx(nonce)

    # ------------------------------------------------------------------ blocks and transactions

    def _format_block(self, block: Any, full: bool) -> dict[str, Any]:
        from eth_tester.backends.pyevm.serializers import serialize_block

        formatted = to_rpc(serialize_block(block, False, False))
        formatted["miner"] = formatted.pop("coinbase")
        formatted["extraData"] = hb(block.header.extra_data)
        formatted["logsBloom"] = hb(block.header.bloom.to_bytes(256, "big"))  # the full 256 bytes, as geth
        formatted.pop("totalDifficulty", None)
        if full:
            formatted["transactions"] = [
                self._format_transaction(block, tx, index) for index, tx in enumerate(block.transactions)
            ]
        return formatted

    def _format_transaction(self, block: Any, tx: Any, index: int) -> dict[str, Any]:
        from eth_tester.backends.pyevm.serializers import serialize_transaction

        raw = serialize_transaction(block, tx, index, False)
        access_list = raw.pop("access_list", None)
        formatted = to_rpc(raw)
        formatted["input"] = formatted.pop("data")
        formatted["to"] = hb(tx.to) if tx.to else None
        if access_list is not None:
            formatted["accessList"] = [
                {"address": hb(entry[0]), "storageKeys": [hb(k.to_bytes(32, "big")) if isinstance(k, int) else hb(k)
                                                          for k in entry[1]]}
                for entry in access_list
            ]
        return formatted

    def _block_param(self, params: Any, method: str, optional_full: bool = True) -> tuple[Any, bool]:
        block_param, *rest = p.positional(params, method, 1, 1 if optional_full else 0)
        full = rest[0] if rest else None
        if method.endswith("ByHash"):
            block = self._resolve_block(p.hash32(block_param, "block hash"))
        else:
            block = self._resolve_block(p.block_id(block_param, "block number"))
        return block, p.boolean(full, "fullTransactions") if full is not None else False

    def _eth_getBlockByNumber(self, params: Any) -> dict[str, Any] | None:
        block, full = self._block_param(params, "eth_getBlockByNumber")
        return self._format_block(block, full) if block is not None else None

    def _eth_getBlockByHash(self, params: Any) -> dict[str, Any] | None:
        block, full = self._block_param(params, "eth_getBlockByHash")
        return self._format_block(block, full) if block is not None else None

    def _eth_getBlockTransactionCountByNumber(self, params: Any) -> str | None:
        block, _ = self._block_param(params, "eth_getBlockTransactionCountByNumber", False)
        return hx(len(block.transactions)) if block is not None else None

    def _eth_getBlockTransactionCountByHash(self, params: Any) -> str | None:
        block, _ = self._block_param(params, "eth_getBlockTransactionCountByHash", False)
        return hx(len(block.transactions)) if block is not None else None

    def _eth_getUncleCountByBlockNumber(self, params: Any) -> str | None:
        block, _ = self._block_param(params, "eth_getUncleCountByBlockNumber", False)
        return "0x0" if block is not None else None

    def _eth_getUncleCountByBlockHash(self, params: Any) -> str | None:
        block, _ = self._block_param(params, "eth_getUncleCountByBlockHash", False)
        return "0x0" if block is not None else None

    def _eth_getUncleByBlockNumberAndIndex(self, params: Any) -> None:
        block_param, index = p.positional(params, "eth_getUncleByBlockNumberAndIndex", 2)
        p.block_id(block_param)
        p.quantity(index, "index")
        return None  # post-merge chains have no uncles

    def _eth_getUncleByBlockHashAndIndex(self, params: Any) -> None:
        block_hash, index = p.positional(params, "eth_getUncleByBlockHashAndIndex", 2)
        p.hash32(block_hash, "block hash")
        p.quantity(index, "index")
        return None

    def _find_transaction(self, tx_hash: bytes) -> tuple[Any, Any, int] | None:
        number = self._tx_index.get(tx_hash)
        if number is None or number > self.block_number:
            return None
        block = self._chain.get_canonical_block_by_number(number)
        for index, tx in enumerate(block.transactions):
            if tx.hash == tx_hash:
                return block, tx, index
        return None

    def _eth_getTransactionByHash(self, params: Any) -> dict[str, Any] | None:
        (tx_hash,) = p.positional(params, "eth_getTransactionByHash", 1)
        found = self._find_transaction(p.hash32(tx_hash, "transaction hash"))
        return self._format_transaction(*found) if found else None

    def _transaction_by_index(self, block: Any, index_param: Any) -> dict[str, Any] | None:
        index = p.quantity(index_param, "index")
        if block is None or index >= len(block.transactions):
            return None
        return self._format_transaction(block, block.transactions[index], index)

    def _eth_getTransactionByBlockNumberAndIndex(self, params: Any) -> dict[str, Any] | None:
        block_param, index = p.positional(params, "eth_getTransactionByBlockNumberAndIndex", 2)
        return self._transaction_by_index(self._resolve_block(p.block_id(block_param)), index)

    def _eth_getTransactionByBlockHashAndIndex(self, params: Any) -> dict[str, Any] | None:
        block_hash, index = p.positional(params, "eth_getTransactionByBlockHashAndIndex", 2)
        return self._transaction_by_index(self._resolve_block(p.hash32(block_hash, "block hash")), index)

    def _block_receipts(self, block: Any) -> list[dict[str, Any]]:
        """A block's receipts as JSON-RPC objects; cached by block hash (a block never changes)."""
        cached = self._receipts_cache.get(block.hash)
        if cached is None:
            cached = self._format_block_receipts(block)
            self._receipts_cache[block.hash] = cached
            if len(self._receipts_cache) > RECEIPTS_CACHE_BLOCKS:
                self._receipts_cache.pop(next(iter(self._receipts_cache)))
        return cached

    def _format_block_receipts(self, block: Any) -> list[dict[str, Any]]:
        receipts = block.get_receipts(self._chain.chaindb)
        base_fee = block.header.base_fee_per_gas
        formatted = []
        log_index = 0
        previous_gas = 0
        for index, (tx, receipt) in enumerate(zip(block.transactions, receipts, strict=True)):
            if tx.to:
                contract = None
            else:
                import rlp
                from eth_utils import keccak

                contract = hb(keccak(rlp.encode([tx.sender, tx.nonce]))[12:])
            tx_type = getattr(tx, "type_id", 0) or 0
            if tx_type >= 2:
                price = min(tx.max_fee_per_gas, tx.max_priority_fee_per_gas + base_fee)
            else:
                price = tx.gas_price
            logs = []
            for log in receipt.logs:
                logs.append({
                    "address": hb(log.address),
                    "topics": [hb(t.to_bytes(32, "big")) for t in log.topics],
                    "data": hb(log.data),
                    "blockNumber": hx(block.number),
                    "blockHash": hb(block.hash),
                    "blockTimestamp": hx(block.header.timestamp),
                    "transactionHash": hb(tx.hash),
                    "transactionIndex": hx(index),
                    "logIndex": hx(log_index),
                    "removed": False,
                })
                log_index += 1
            formatted.append({
                "type": hx(tx_type),
                "status": "0x1" if receipt.state_root == b"\x01" else "0x0",
                "cumulativeGasUsed": hx(receipt.gas_used),
                "logs": logs,
                "logsBloom": hb(receipt.bloom.to_bytes(256, "big")),
                "transactionHash": hb(tx.hash),
                "transactionIndex": hx(index),
                "blockHash": hb(block.hash),
                "blockNumber": hx(block.number),
                "gasUsed": hx(receipt.gas_used - previous_gas),
                "effectiveGasPrice": hx(price),
                "from": hb(tx.sender),
                "to": hb(tx.to) if tx.to else None,
                "contractAddress": contract,
            })
            previous_gas = receipt.gas_used
        return formatted

    def _eth_getTransactionReceipt(self, params: Any) -> dict[str, Any] | None:
        (tx_hash,) = p.positional(params, "eth_getTransactionReceipt", 1)
        found = self._find_transaction(p.hash32(tx_hash, "transaction hash"))
        if not found:
            return None
        block, _, index = found
        return self._block_receipts(block)[index]

    def _eth_getBlockReceipts(self, params: Any) -> list[dict[str, Any]] | None:
        (block_param,) = p.positional(params, "eth_getBlockReceipts", 1)
        block = self._resolve_block(p.block_id(block_param))
        return self._block_receipts(block) if block is not None else None

    # ------------------------------------------------------------------ execution

    def _call_transaction(self, value: Any, method: str) -> dict[str, Any]:
        """An RPC call object (from, to, gas, fees, value, data/input) to eth-tester's normalized form."""
        if not isinstance(value, dict):
            raise invalid_params(f"{method}: the transaction must be an object")
        tx: dict[str, Any] = {"from": p.address(value["from"], "from") if value.get("from") else ZERO_ADDRESS}
        if value.get("to") is not None:
            tx["to"] = p.address(value["to"], "to")
        for rpc_name, name in (("gas", "gas"), ("gasPrice", "gas_price"), ("maxFeePerGas", "max_fee_per_gas"),
                               ("maxPriorityFeePerGas", "max_priority_fee_per_gas"), ("value", "value"),
                               ("nonce", "nonce")):
            if value.get(rpc_name) is not None:
                tx[name] = p.quantity(value[rpc_name], rpc_name)
        payload = value.get("input", value.get("data"))
        if payload is not None:
            tx["data"] = p.data(payload, "input")
        if "gas_price" not in tx and "max_fee_per_gas" not in tx:
            tx["gas_price"] = 0  # a call pays nothing unless it says so, as geth does
        return tx

    def _execute(self, tx: dict[str, Any], block: Any, *, access_list: tuple = (),
                 touched: list[tuple[bytes, int | None]] | None = None) -> Any:
        """Run TX on top of BLOCK and throw the state away. TOUCHED, if given, collects (address, slot or None)
        for every account and storage slot the execution warmed (for eth_createAccessList)."""
        from eth.vm.spoof import SpoofTransaction

        header = block.header
        if "gas" not in tx:
            tx["gas"] = header.gas_limit
        vm = self._chain.get_vm(at_header=self._chain.create_header_from_parent(header))
        state = vm.state
        if "nonce" not in tx:
            tx["nonce"] = state.get_nonce(tx["from"])
        tx.setdefault("value", 0)
        tx.setdefault("data", b"")
        tx.setdefault("to", b"")
        builder = vm.get_transaction_builder()
        if access_list:
            unsigned = builder.new_unsigned_dynamic_fee_transaction(
                chain_id=self.chain_id, nonce=tx["nonce"], max_priority_fee_per_gas=tx.get("max_priority_fee_per_gas", 0),
                max_fee_per_gas=tx.get("max_fee_per_gas", tx.get("gas_price", 0)), gas=tx["gas"], to=tx["to"],
                value=tx["value"], data=tx["data"], access_list=access_list,
            )
        elif "gas_price" in tx:
            unsigned = builder.create_unsigned_transaction(
                nonce=tx["nonce"], gas_price=tx["gas_price"], gas=tx["gas"], to=tx["to"], value=tx["value"],
                data=tx["data"],
            )
        else:
            unsigned = builder.new_unsigned_dynamic_fee_transaction(
                chain_id=self.chain_id, nonce=tx["nonce"], max_priority_fee_per_gas=tx.get("max_priority_fee_per_gas", 0),
                max_fee_per_gas=tx["max_fee_per_gas"], gas=tx["gas"], to=tx["to"], value=tx["value"], data=tx["data"],
                access_list=(),
            )
        spoofed = SpoofTransaction(unsigned, from_=tx["from"])
        if touched is not None:
            _record_warming(state, touched)
        snapshot = state.snapshot()
        try:
            if tx.get("gas_price", None) == 0 or (access_list and not tx.get("max_fee_per_gas")):
                with _zero_base_fee(state):
                    computation = state.apply_transaction(spoofed)
            else:
                computation = state.apply_transaction(spoofed)
        finally:
            state.revert(snapshot)
        # what a receipt would say: intrinsic gas + execution - refund (capped at a fifth, EIP-3529)
        used = unsigned.intrinsic_gas + computation.get_gas_used()
        computation.transaction_gas_used = used - min(computation.get_gas_refund(), used // 5)
        return computation

    def _raise_for_computation(self, computation: Any) -> None:
        if not computation.is_error:
            return
        from eth.exceptions import Revert

        error = computation.error
        if isinstance(error, Revert):
            revert_data = bytes(error.args[0]) if error.args and isinstance(error.args[0], bytes) else b""
            raise revert_error(revert_data)
        raise RpcError(INVALID_INPUT, _evm_error_message(error))

    def _eth_call(self, params: Any) -> str:
        tx_param, block_param, overrides = p.positional(params, "eth_call", 1, 2)
        if overrides is not None:
            raise invalid_params("eth_call: state overrides are not supported")
        tx = self._call_transaction(tx_param, "eth_call")
        block = self._block_or_fail(p.block_id(block_param))
        computation = self._execute(tx, block)
        self._raise_for_computation(computation)
        return hb(computation.output)

    def _eth_createAccessList(self, params: Any) -> dict[str, Any]:
        """geth's answer: every account and slot the call touches, less the sender, the recipient (unless its
        storage is touched) and the precompiles; gasUsed with that list."""
        tx_param, block_param = p.positional(params, "eth_createAccessList", 1, 1)
        tx = self._call_transaction(tx_param, "eth_createAccessList")
        block = self._block_or_fail(p.block_id(block_param))
        touched: list[tuple[bytes, int | None]] = []
        first = self._execute(dict(tx), block, touched=touched)
        excluded = {tx["from"], tx.get("to", b""), ZERO_ADDRESS} | PRECOMPILES  # ZERO_ADDRESS: the coinbase, warm since Shanghai
        slots: dict[bytes, list[int]] = {}
        for address, slot in touched:
            if slot is None:
                if address not in excluded:
                    slots.setdefault(address, [])
            elif slot not in slots.setdefault(address, []):
                slots[address].append(slot)
        access_list = tuple((address, tuple(keys)) for address, keys in slots.items())
        computation = self._execute(dict(tx), block, access_list=access_list) if access_list else first
        result: dict[str, Any] = {
            "accessList": [{"address": hb(address), "storageKeys": [hb(k.to_bytes(32, "big")) for k in keys]}
                           for address, keys in access_list],
            "gasUsed": hx((computation if not computation.is_error else first).transaction_gas_used),
        }
        if computation.is_error:
            try:
                self._raise_for_computation(computation)
            except RpcError as exc:
                result["error"] = exc.message
        return result

    def _eth_getProof(self, params: Any) -> dict[str, Any]:
        """EIP-1186: the account's and the slots' Merkle proofs against the block's state root."""
        import rlp
        from eth.constants import BLANK_ROOT_HASH
        from eth.rlp.accounts import Account
        from eth_utils import keccak
        from trie import HexaryTrie

        account_param, keys_param, block_param = p.positional(params, "eth_getProof", 2, 1)
        address = p.address(account_param)
        if not isinstance(keys_param, list) or len(keys_param) > 1000:
            raise invalid_params("eth_getProof: storage keys must be an array of at most 1000 slots")
        slots = [_slot(key) for key in keys_param]
        header = self._block_or_fail(p.block_id(block_param)).header
        db = self._chain.chaindb.db
        state_trie = HexaryTrie(db, root_hash=header.state_root)
        account_key = keccak(address)
        account_proof = state_trie.get_proof(account_key)
        encoded = state_trie.get(account_key)
        account = rlp.decode(encoded, sedes=Account) if encoded else Account(0, 0, BLANK_ROOT_HASH, keccak(b""))
        storage_trie = HexaryTrie(db, root_hash=account.storage_root)
        storage_proof = []
        for slot in slots:
            slot_key = keccak(slot.to_bytes(32, "big"))
            raw = storage_trie.get(slot_key)
            value = rlp.decode(raw, sedes=rlp.sedes.big_endian_int) if raw else 0
            storage_proof.append({"key": hx(slot), "value": hx(value),
                                  "proof": [hb(rlp.encode(node)) for node in storage_trie.get_proof(slot_key)]})
        return {
            "address": hb(address),
            "accountProof": [hb(rlp.encode(node)) for node in account_proof],
            "balance": hx(account.balance),
            "codeHash": hb(account.code_hash),
            "nonce": hx(account.nonce),
            "storageHash": hb(account.storage_root),
            "storageProof": storage_proof,
        }

    def _eth_estimateGas(self, params: Any) -> str:
        tx_param, block_param = p.positional(params, "eth_estimateGas", 1, 1)
        tx = self._call_transaction(tx_param, "eth_estimateGas")
        block = self._block_or_fail(p.block_id(block_param))
        cap = tx.pop("gas", block.header.gas_limit)
        tx_at_cap = dict(tx, gas=cap)
        computation = self._execute(dict(tx_at_cap), block)
        self._raise_for_computation(computation)
        low, high = 21_000 - 1, cap
        if not tx.get("data") and tx.get("to"):  # a plain transfer needs exactly 21000 (to an EOA)
            state = self._state_at(block.number)
            if not state.get_code(tx["to"]):
                return hx(21_000)
        while low + 1 < high:  # binary search like geth: the least gas that does not fail
            mid = (low + high) // 2
            if self._execute(dict(tx, gas=mid), block).is_error:
                low = mid
            else:
                high = mid
        return hx(high)

    # ------------------------------------------------------------------ sending

    def _eth_sendRawTransaction(self, params: Any) -> str:
        (raw_param,) = p.positional(params, "eth_sendRawTransaction", 1)
        raw = p.data(raw_param, "raw transaction")
        if not raw:
            raise RpcError(INVALID_INPUT, "typed transaction too short")
        tx = self._decode(raw)
        return self._submit(tx)

    def _decode(self, raw: bytes) -> Any:
        builder = self._chain.get_vm().get_transaction_builder()
        try:
            tx = builder.decode(raw)
            _ = tx.sender  # recovering the signer now: a bad signature is an invalid transaction
        except Exception as exc:  # rlp, signature or type errors
            raise RpcError(INVALID_INPUT, f"invalid transaction: {_short(exc)}") from None
        if tx.chain_id is None:  # only a legacy (pre-EIP-155) transaction has none
            if not ALLOW_UNPROTECTED_TRANSACTIONS:
                raise RpcError(INVALID_INPUT, "only replay-protected (EIP-155) transactions allowed over RPC")
        elif tx.chain_id != self.chain_id:
            raise RpcError(INVALID_INPUT, "invalid chain id for signer")
        return tx

    def _submit(self, tx: Any) -> str:
        """Pool rules: a known hash is `already known`, a used nonce `nonce too low`, a future nonce is held."""
        sender = tx.sender
        queued = self._queued.setdefault(sender, {})
        if tx.hash in self._tx_index and self._tx_index[tx.hash] <= self.block_number:
            raise RpcError(INVALID_INPUT, "already known")
        if any(tx.hash == entry[0] for entry in queued.values()):
            raise RpcError(INVALID_INPUT, "already known")
        state = self._chain.get_vm().state
        state_nonce = state.get_nonce(sender)
        if tx.nonce < state_nonce:
            raise RpcError(INVALID_INPUT, f"nonce too low: address {hb(sender)}, tx: {tx.nonce} state: {state_nonce}")
        self._check_affordable(tx, state)
        if tx.nonce > state_nonce:
            if tx.nonce in queued:
                raise RpcError(INVALID_INPUT, "replacement transaction underpriced")
            queued[tx.nonce] = (tx.hash, tx)
            self._notify_pending(tx.hash)
            return hb(tx.hash)
        self._notify_pending(tx.hash)
        self._mine(tx)
        self._drain_queue(sender)
        return hb(tx.hash)

    def _notify_pending(self, tx_hash: bytes) -> None:
        self.record_pending(hb(tx_hash))
        for listener in list(self.listeners):
            listener("pending", hb(tx_hash))

    def _check_affordable(self, tx: Any, state: Any) -> None:
        """Geth's admission checks, against STATE (the pending block's)."""
        base_fee = self._chain.header.base_fee_per_gas
        max_fee = getattr(tx, "max_fee_per_gas", None)
        if max_fee is None:
            max_fee = tx.gas_price
        if max_fee < base_fee:
            raise RpcError(
                INVALID_INPUT,
                f"max fee per gas less than block base fee: address {hb(tx.sender)}, maxFeePerGas: {max_fee},"
                f" baseFee: {base_fee}",
            )
        if tx.gas < tx.intrinsic_gas:
            raise RpcError(INVALID_INPUT, f"intrinsic gas too low: gas {tx.gas}, minimum needed {tx.intrinsic_gas}")
        if tx.gas > self._chain.header.gas_limit:
            raise RpcError(INVALID_INPUT, "exceeds block gas limit")
        balance = state.get_balance(tx.sender)
        cost = tx.gas * max_fee + tx.value
        if balance < cost:
            raise RpcError(
                INVALID_INPUT,
                f"insufficient funds for gas * price + value: address {hb(tx.sender)} have {balance} want {cost}",
            )

    def _drain_queue(self, sender: bytes) -> None:
        queued = self._queued.get(sender)
        while queued:
            state = self._chain.get_vm().state
            entry = queued.pop(state.get_nonce(sender), None)
            if entry is None:
                break
            try:
                self._check_affordable(entry[1], state)
                self._mine(entry[1])
            except RpcError:
                continue  # a held transaction that no longer fits is dropped, as a pool would
        if not queued:
            self._queued.pop(sender, None)

    def _eth_sendTransaction(self, params: Any) -> str:
        """Control plane only: sign with a dev account's key and send."""
        (tx_param,) = p.positional(params, "eth_sendTransaction", 1)
        tx = self._call_transaction(tx_param, "eth_sendTransaction")
        key = self.dev_keys.get(tx["from"])
        if key is None:
            raise RpcError(INVALID_INPUT, f"unknown account {hb(tx['from'])}: not a dev account")
        state = self._chain.get_vm().state
        if "nonce" not in tx:
            nonce = state.get_nonce(tx["from"])
            while nonce in self._queued.get(tx["from"], {}):
                nonce += 1
            tx["nonce"] = nonce
        tx.setdefault("value", 0)
        tx.setdefault("data", b"")
        if tx.get("gas_price") == 0:
            del tx["gas_price"]
        if "gas" not in tx:
            estimate_params = {"from": hb(tx["from"]), "value": hx(tx["value"]), "input": hb(tx["data"])}
            if tx.get("to"):
                estimate_params["to"] = hb(tx["to"])
            tx["gas"] = int(self._eth_estimateGas([estimate_params]), 16)
        builder = self._chain.get_vm().get_transaction_builder()
        if "gas_price" in tx:
            unsigned = builder.create_unsigned_transaction(
                nonce=tx["nonce"], gas_price=tx["gas_price"], gas=tx["gas"], to=tx.get("to", b""),
                value=tx["value"], data=tx["data"],
            )
            signed = unsigned.as_signed_transaction(key, chain_id=self.chain_id)
        else:
            priority = tx.get("max_priority_fee_per_gas", 10**9)
            unsigned = builder.new_unsigned_dynamic_fee_transaction(
                chain_id=self.chain_id, nonce=tx["nonce"], max_priority_fee_per_gas=priority,
                max_fee_per_gas=tx.get("max_fee_per_gas", 2 * self._base_fee() + priority), gas=tx["gas"],
                to=tx.get("to", b""), value=tx["value"], data=tx["data"], access_list=(),
            )
            signed = unsigned.as_signed_transaction(key)
        return self._submit(signed)

    # ------------------------------------------------------------------ logs and filters

    def _log_criteria(self, value: Any, method: str) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise invalid_params(f"{method}: the filter must be an object")
        criteria: dict[str, Any] = {}
        if value.get("blockHash") is not None:
            if value.get("fromBlock") is not None or value.get("toBlock") is not None:
                raise invalid_params(f"{method}: cannot specify both blockHash and fromBlock/toBlock")
            criteria["block_hash"] = p.hash32(value["blockHash"], "blockHash")
        criteria["from"] = p.block_id(value.get("fromBlock"), "fromBlock")
        criteria["to"] = p.block_id(value.get("toBlock"), "toBlock")
        address = value.get("address")
        if address is None:
            criteria["addresses"] = None
        elif isinstance(address, list):
            criteria["addresses"] = {p.address(a) for a in address}
        else:
            criteria["addresses"] = {p.address(address)}
        topics = value.get("topics") or []
        if not isinstance(topics, list) or len(topics) > 4:
            raise invalid_params(f"{method}: topics must be an array of at most 4 entries")
        parsed_topics: list[set[int] | None] = []
        for topic in topics:
            if topic is None:
                parsed_topics.append(None)
            elif isinstance(topic, list):
                parsed_topics.append({int.from_bytes(p.hash32(t, "topic"), "big") for t in topic if t is not None}
                                     if all(t is not None for t in topic) else None)
            else:
                parsed_topics.append({int.from_bytes(p.hash32(topic, "topic"), "big")})
        criteria["topics"] = parsed_topics
        return criteria

    def _block_range(self, criteria: dict[str, Any]) -> tuple[int, int]:
        def number(block: Any, default: int) -> int:
            if isinstance(block, int):
                return block
            if block == "earliest":
                return 0
            return default

        start = number(criteria["from"], self.block_number)
        end = number(criteria["to"], self.block_number)
        return start, min(end, self.block_number)

    def _matching_logs(self, criteria: dict[str, Any], start: int, end: int) -> list[dict[str, Any]]:
        if "block_hash" in criteria:
            block = self._resolve_block(criteria["block_hash"])
            if block is None:
                raise RpcError(INVALID_INPUT, "unknown block")
            blocks = [block]
        else:
            blocks = (self._chain.get_canonical_block_by_number(n) for n in range(start, end + 1))
        addresses = criteria["addresses"]
        topics = criteria["topics"]
        found: list[dict[str, Any]] = []
        for block in blocks:
            if not block.transactions:
                continue
            for receipt in self._block_receipts(block):
                for log in receipt["logs"]:
                    if addresses is not None and bytes.fromhex(log["address"][2:]) not in addresses:
                        continue
                    log_topics = log["topics"]
                    if len(topics) > len(log_topics):
                        continue
                    if any(wanted is not None and int(log_topics[i], 16) not in wanted for i, wanted in enumerate(topics)):
                        continue
                    found.append(log)
                    if len(found) > GET_LOGS_MAX_RESULTS:
                        raise RpcError(LIMIT_EXCEEDED, f"query returned more than {GET_LOGS_MAX_RESULTS} results")
        return found

    def _eth_getLogs(self, params: Any) -> list[dict[str, Any]]:
        (filter_param,) = p.positional(params, "eth_getLogs", 1)
        criteria = self._log_criteria(filter_param, "eth_getLogs")
        start, end = self._block_range(criteria)
        return self._matching_logs(criteria, start, end)

    def _expire_filters(self) -> None:
        now = self.clock()
        for filter_id in [f for f, flt in self._filters.items() if now - flt.last_poll > FILTER_TIMEOUT_SECONDS]:
            del self._filters[filter_id]

    def _new_filter_id(self) -> str:
        return "0x" + os.urandom(16).hex()

    def _install(self, flt: _Filter) -> str:
        self._expire_filters()
        filter_id = self._new_filter_id()
        self._filters[filter_id] = flt
        return filter_id

    def _eth_newFilter(self, params: Any, owner: str) -> str:
        (filter_param,) = p.positional(params, "eth_newFilter", 1)
        criteria = self._log_criteria(filter_param, "eth_newFilter")
        start, _ = self._block_range(dict(criteria, to="latest"))
        if criteria["from"] in ("latest", "pending", "safe", "finalized"):
            start = self.block_number + 1
        return self._install(_Filter("logs", owner, self.clock(), criteria, next_block=start))

    def _eth_newBlockFilter(self, params: Any, owner: str) -> str:
        p.positional(params, "eth_newBlockFilter", 0)
        return self._install(_Filter("blocks", owner, self.clock(), next_block=self.block_number + 1))

    def _eth_newPendingTransactionFilter(self, params: Any, owner: str) -> str:
        p.positional(params, "eth_newPendingTransactionFilter", 0, 1)
        filter_id = self._install(_Filter("pending", owner, self.clock()))
        return filter_id

    def record_pending(self, tx_hash: str) -> None:
        for flt in self._filters.values():
            if flt.kind == "pending":
                flt.pending.append(tx_hash)

    def _filter(self, params: Any, method: str, owner: str) -> tuple[str, _Filter]:
        (filter_id,) = p.positional(params, method, 1)
        if not isinstance(filter_id, str):
            raise invalid_params(f"{method}: invalid filter id {filter_id!r}")
        self._expire_filters()
        flt = self._filters.get(filter_id)
        if flt is None or flt.owner != owner:
            raise RpcError(INVALID_INPUT, "filter not found")
        flt.last_poll = self.clock()
        return filter_id, flt

    def _eth_getFilterChanges(self, params: Any, owner: str) -> list[Any]:
        _, flt = self._filter(params, "eth_getFilterChanges", owner)
        if flt.kind == "pending":
            changes, flt.pending = flt.pending, []
            return changes
        start, end = flt.next_block, self.block_number
        if flt.kind == "blocks":
            hashes = [hb(self._chain.get_canonical_block_by_number(n).hash) for n in range(start, end + 1)]
            flt.next_block = max(flt.next_block, end + 1)
            return hashes
        last = self._block_range(flt.criteria)[1] if isinstance(flt.criteria["to"], int) else end
        logs = self._matching_logs(flt.criteria, start, min(end, last)) if start <= min(end, last) else []
        flt.next_block = max(flt.next_block, end + 1)
        return logs

    def _eth_getFilterLogs(self, params: Any, owner: str) -> list[Any]:
        _, flt = self._filter(params, "eth_getFilterLogs", owner)
        if flt.kind != "logs":
            raise RpcError(INVALID_INPUT, "filter not found")
        start, end = self._block_range(flt.criteria)
        return self._matching_logs(flt.criteria, start, end)

    def _eth_uninstallFilter(self, params: Any, owner: str) -> bool:
        (filter_id,) = p.positional(params, "eth_uninstallFilter", 1)
        flt = self._filters.get(filter_id) if isinstance(filter_id, str) else None
        if flt is None or flt.owner != owner:
            return False
        del self._filters[filter_id]
        return True

    # ------------------------------------------------------------------ subscriptions (chains/subscriptions.py)

    # geth's newHeads payload is its types.Header JSON: these fields, in this order, `hash` last.
    NEW_HEADS_FIELDS = (
        "parentHash", "sha3Uncles", "miner", "stateRoot", "transactionsRoot", "receiptsRoot", "logsBloom",
        "difficulty", "number", "gasLimit", "gasUsed", "timestamp", "extraData", "mixHash", "nonce",
        "baseFeePerGas", "withdrawalsRoot", "blobGasUsed", "excessBlobGas", "parentBeaconBlockRoot",
        "requestsHash", "hash",
    )

    def format_header(self, number: int) -> dict[str, Any]:
        """Mined block NUMBER's header as a newHeads notification carries it."""
        formatted = self._format_block(self._chain.get_canonical_block_by_number(number), False)
        return {name: formatted[name] for name in self.NEW_HEADS_FIELDS if name in formatted}

    def block_logs(self, number: int) -> list[dict[str, Any]]:
        """Every log of mined block NUMBER, formatted as eth_getLogs returns them."""
        block = self._chain.get_canonical_block_by_number(number)
        if not block.transactions:
            return []
        return [log for receipt in self._block_receipts(block) for log in receipt["logs"]]

    def subscription_log_criteria(self, value: Any) -> dict[str, Any]:
        """A logs subscription's `{address, topics}`, read as eth_newFilter reads them (same errors)."""
        return self._log_criteria(value, "eth_subscribe")

    # ------------------------------------------------------------------ test controls

    def _evm_snapshot(self, params: Any) -> str:
        p.positional(params, "evm_snapshot", 0)
        self._snapshot_counter += 1
        self._snapshots[self._snapshot_counter] = _Snapshot(
            head_hash=self._head().hash,
            queued={sender: dict(txs) for sender, txs in self._queued.items()},
            time_offset=self._time_offset,
            next_timestamp=self._next_timestamp,
        )
        return hx(self._snapshot_counter)

    def snapshot(self) -> str:
        return self._evm_snapshot([])

    def _evm_revert(self, params: Any) -> bool:
        (snapshot_param,) = p.positional(params, "evm_revert", 1)
        snapshot_id = p.quantity(snapshot_param, "snapshot id") if isinstance(snapshot_param, str) else snapshot_param
        if not isinstance(snapshot_id, int) or isinstance(snapshot_id, bool):
            raise invalid_params("evm_revert: expected a snapshot id such as 0x1")
        snapshot = self._snapshots.get(snapshot_id)
        if snapshot is None:
            return False
        for later in [s for s in self._snapshots if s >= snapshot_id]:  # as anvil: this and later ones are used up
            del self._snapshots[later]
        self._revert_to_block(snapshot.head_hash)
        self._queued = snapshot.queued
        self._time_offset = snapshot.time_offset
        self._next_timestamp = snapshot.next_timestamp
        return True

    def revert(self, snapshot_id: str) -> bool:
        return self._evm_revert([snapshot_id])

    def _revert_to_block(self, head_hash: bytes) -> None:
        if head_hash == self._head().hash and not self._chain.get_block().transactions:
            return
        self._set_head(head_hash)

    def _set_head(self, head_hash: bytes) -> None:
        # Make that block the canonical head and build a fresh pending header on it. (eth-tester's
        # revert re-imports the block, which fails for blocks mined after a direct state change.)
        chain = self._chain
        chaindb = chain.chaindb
        header = chaindb.get_block_header_by_hash(head_hash)
        from eth.constants import GENESIS_PARENT_HASH

        chaindb._set_as_canonical_chain_head(chaindb.db, header, GENESIS_PARENT_HASH)
        chain.header = chain.create_header_from_parent(header)
        self._refresh_head()
        self._tx_index = {h: n for h, n in self._tx_index.items() if n <= self.block_number}
        for flt in self._filters.values():
            flt.next_block = min(flt.next_block, self.block_number + 1)

    def reset(self) -> None:
        self._revert_to_block(self.genesis_hash)
        self._queued.clear()
        self._snapshots.clear()
        self._filters.clear()
        self._tx_index.clear()
        self._time_offset = 0.0
        self._next_timestamp = None

    # ------------------------------------------------------------------ state files

    STATE_VERSION = 1

    def export_state(self) -> dict[str, Any]:
        """Everything needed to rebuild this chain: its database, head, pool, snapshots and time."""
        store = self._chain.chaindb.db.wrapped_db.kv_store
        return {
            "version": self.STATE_VERSION,
            "chain_id": self.chain_id,
            "db": {k.hex(): v.hex() for k, v in store.items()},
            "head": self._head().hash.hex(),
            "genesis": self.genesis_hash.hex(),
            "tx_index": {h.hex(): n for h, n in self._tx_index.items()},
            "queued": [_encode_transaction(tx) for txs in self._queued.values() for _, tx in txs.values()],
            "time_offset": self._time_offset,
            "next_timestamp": self._next_timestamp,
            "snapshots": {str(i): {"head": snap.head_hash.hex(), "time_offset": snap.time_offset,
                                   "next_timestamp": snap.next_timestamp,
                                   "queued": [_encode_transaction(tx) for txs in snap.queued.values()
                                              for _, tx in txs.values()]}
                          for i, snap in self._snapshots.items()},
            "snapshot_counter": self._snapshot_counter,
        }

    def import_state(self, dump: dict[str, Any]) -> None:
        """Replace this chain's state by an export_state() dump. Raises ValueError for a dump that does not fit."""
        if dump.get("version") != self.STATE_VERSION:
            raise ValueError(f"unsupported chain state version {dump.get('version')!r}")
        if dump.get("chain_id") != self.chain_id:
            raise ValueError(f"the dump is for chain id {dump.get('chain_id')}, this network's is {self.chain_id}")
        try:
            entries = {bytes.fromhex(k): bytes.fromhex(v) for k, v in dump["db"].items()}
            head = bytes.fromhex(dump["head"])
            genesis = bytes.fromhex(dump["genesis"])
            tx_index = {bytes.fromhex(h): int(n) for h, n in dump["tx_index"].items()}
            queued = self._queue_of([bytes.fromhex(raw) for raw in dump["queued"]])
            snapshots = {
                int(i): _Snapshot(bytes.fromhex(snap["head"]), self._queue_of([bytes.fromhex(r) for r in snap["queued"]]),
                                  float(snap["time_offset"]), snap["next_timestamp"])
                for i, snap in dump["snapshots"].items()
            }
            counter = int(dump["snapshot_counter"])
            time_offset = float(dump["time_offset"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"malformed chain state: {type(exc).__name__}: {exc}") from None
        chaindb = self._chain.chaindb
        store = chaindb.db.wrapped_db.kv_store
        missing_head = head not in entries and head not in store
        if missing_head:
            raise ValueError("malformed chain state: the head block is not in the database")
        store.update(entries)
        self.genesis_hash = genesis
        # Not _revert_to_block: the dump's number->hash entries already name its head as canonical, while the
        # pending header still sits on this process's own genesis.
        self._set_head(head)
        self._tx_index = tx_index
        self._queued = queued
        self._snapshots = snapshots
        self._snapshot_counter = counter
        self._time_offset = time_offset
        self._next_timestamp = dump.get("next_timestamp")
        self._filters.clear()
        self._refresh_head()

    def _queue_of(self, raws: list[bytes]) -> dict[bytes, dict[int, tuple[bytes, Any]]]:
        queued: dict[bytes, dict[int, tuple[bytes, Any]]] = {}
        builder = self._chain.get_vm().get_transaction_builder()
        for raw in raws:
            tx = builder.decode(raw)
            queued.setdefault(tx.sender, {})[tx.nonce] = (tx.hash, tx)
        return queued

    def _evm_mine(self, params: Any) -> str:
        first, = p.positional(params, "evm_mine", 0, 1)
        blocks = 1
        if isinstance(first, dict):
            if first.get("timestamp") is not None:
                self._next_timestamp = _int_param(first["timestamp"], "timestamp")
            blocks = _int_param(first.get("blocks", 1), "blocks")
        elif first is not None:
            self._next_timestamp = _int_param(first, "timestamp")
        if not 1 <= blocks <= 10_000:
            raise invalid_params("evm_mine: blocks must be between 1 and 10000")
        for _ in range(blocks):
            self._mine()
        return "0x0"

    def mine(self, blocks: int = 1) -> None:
        self._evm_mine([{"blocks": blocks}])

    def _evm_increaseTime(self, params: Any) -> str:
        (seconds_param,) = p.positional(params, "evm_increaseTime", 1)
        seconds = _int_param(seconds_param, "seconds")
        self._time_offset += seconds
        return hx(int(self._time_offset))

    def _evm_setNextBlockTimestamp(self, params: Any) -> None:
        (timestamp,) = p.positional(params, "evm_setNextBlockTimestamp", 1)
        value = _int_param(timestamp, "timestamp")
        if value <= self._head().header.timestamp:
            raise RpcError(INVALID_INPUT, f"timestamp {value} is not after the latest block's")
        self._next_timestamp = value
        return None

    def _set_state(self, change: Callable[[Any], None]) -> None:
        """Apply a direct state change, then mine a block so `latest` reads see it."""
        chain = self._chain
        state = chain.get_vm(chain.header).state
        change(state)
        state.persist()
        chain.header = chain.header.copy(state_root=state.state_root)
        self._mine()

    def _anvil_setBalance(self, params: Any) -> bool:
        account, balance = p.positional(params, "anvil_setBalance", 2)
        address = p.address(account)
        wei = _int_param(balance, "balance")
        if not 0 <= wei < 2**256:
            raise invalid_params("invalid balance: must be between 0 and 2**256-1")
        self._set_state(lambda state: state.set_balance(address, wei))
        return True

    _hardhat_setBalance = _anvil_setBalance

    def set_balance(self, address: str, wei: int) -> None:
        self._anvil_setBalance([address, hx(wei)])

    def _anvil_setCode(self, params: Any) -> bool:
        account, code = p.positional(params, "anvil_setCode", 2)
        address, raw = p.address(account), p.data(code, "code")
        self._set_state(lambda state: state.set_code(address, raw))
        return True

    _hardhat_setCode = _anvil_setCode

    def _anvil_setNonce(self, params: Any) -> bool:
        account, nonce = p.positional(params, "anvil_setNonce", 2)
        address, value = p.address(account), _int_param(nonce, "nonce")
        if not 0 <= value < 2**64:
            raise invalid_params("invalid nonce: must be between 0 and 2**64-1")
        self._set_state(lambda state: state.set_nonce(address, value))
        return True

    _hardhat_setNonce = _anvil_setNonce

    def _anvil_setStorageAt(self, params: Any) -> bool:
        account, slot, value = p.positional(params, "anvil_setStorageAt", 3)
        address = p.address(account)
        position = _slot(slot)
        stored = int.from_bytes(p.fixed_data(value, "value", 32), "big")
        self._set_state(lambda state: state.set_storage(address, position, stored))
        return True

    _hardhat_setStorageAt = _anvil_setStorageAt


class _zero_base_fee:
    """A zero-priced call (no fee fields) runs with base fee 0, as geth's eth_call does."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def __enter__(self) -> None:
        self.context = self.state.execution_context
        self.original = self.context._base_fee_per_gas
        self.context._base_fee_per_gas = 0

    def __exit__(self, *exc: object) -> None:
        self.context._base_fee_per_gas = self.original


def _slot(value: Any) -> int:
    """A storage slot: a quantity (0x1) or 32 bytes of hex (0x00..01), as clients send either."""
    if isinstance(value, str) and value.startswith("0x") and 2 < len(value) <= 66:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise invalid_params(f"invalid storage slot: expected a hex quantity or 32 bytes, got {value!r:.80}")


def _encode_transaction(tx: Any) -> str:
    import rlp

    raw = tx.encode() if hasattr(tx, "encode") else rlp.encode(tx)
    return raw.hex()


PRECOMPILES = frozenset(i.to_bytes(20, "big") for i in range(1, 0x12))  # 0x01-0x11 under Prague


def _record_warming(state: Any, touched: list[tuple[bytes, int | None]]) -> None:
    """Wrap this state's warm-marking methods to record what the execution touches (the EVM warms every account
    and slot it reads or writes, EIP-2929)."""
    mark_address, mark_storage = state.mark_address_warm, state.mark_storage_warm

    def address_warm(address: bytes) -> None:
        touched.append((address, None))
        mark_address(address)

    def storage_warm(address: bytes, slot: int) -> None:
        touched.append((address, slot))
        mark_storage(address, slot)

    state.mark_address_warm = address_warm
    state.mark_storage_warm = storage_warm


def _int_param(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return p.quantity(value, what)


def revert_error(revert_data: bytes) -> RpcError:
    """Code 3, `execution reverted[: reason]`, data = the revert data: web3.py raises ContractLogicError."""
    message = "execution reverted"
    if revert_data[:4] == ERROR_STRING_SELECTOR:
        try:
            from eth_abi import decode

            (reason,) = decode(["string"], revert_data[4:])
            message = f"execution reverted: {reason}"
        except Exception:  # malformed Error(string) payload: keep the plain message
            pass
    return RpcError(EXECUTION_REVERTED, message, hb(revert_data))


def _evm_error_message(error: Any) -> str:
    name = type(error).__name__
    names = {"OutOfGas": "out of gas", "InvalidInstruction": "invalid opcode", "StackDepthLimit": "max call depth exceeded",
             "InsufficientFunds": "insufficient balance for transfer", "WriteProtection": "write protection"}
    text = names.get(name, name)
    detail = str(error)
    return f"{text}: {detail}" if detail and text != detail else text


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."

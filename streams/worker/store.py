"""The households table on disk: Faust's RocksDB store, for writes made outside a stream event.

Faust's RocksDB store writes a key into the database of the partition of the event being
processed (`current_event()`), and asserts there is one. The worker also writes from the tick
path and its timers (a rebalance opened by a price tick, an expiry), where there is no event;
there the partition is the one the table's changelog uses for the key (`use_partitioner`: the
murmur2 partition of the household id, as on every input topic). Inside an event it is the
same partition: the input topics are co-partitioned with the table.

Registered as the `umhrocksdb://` store; `Settings.table_store` names it for RocksDB.
"""

from __future__ import annotations

from faust.stores import STORES
from faust.stores.rocksdb import Store as RocksDBStore

from streams.kafka.topics import partition_for

SCHEME = "umhrocksdb"


class HouseholdRocksDB(RocksDBStore):
    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = partition_for(key.decode(), self.table.partitions or 1)
        db = self._db_for_partition(partition)
        self._key_index[key] = partition
        db.put(key, value)


STORES.aliases[SCHEME] = f"{__name__}:HouseholdRocksDB"

"""ebXML CPA 2.0 documents: the subset Digikoppeling uses, read into frozen values.

One module per job, so each can be read and tested on its own:

* `duration`: xs:duration texts (retry interval, persist duration) as timedeltas;
* `model`: the values, `Cpa`, `CpaParty` and its `ChannelSecurity`, which the rest of the
  adapter works with;
* `reader`: reading and checking one CPA file, every problem a `CpaError`
  (`load_cpa`, `check_cpa`);
* `registry`: `CpaStore`, the CPAs of one directory and the lookups messages need.

Importers use this package, not its modules, so the split stays an internal matter.
"""

from adapter.ebms.cpa.duration import parse_duration
from adapter.ebms.cpa.model import ChannelSecurity, Cpa, CpaParty
from adapter.ebms.cpa.reader import (
    NEXT_MSH,
    NSMAP,
    OIN_PARTY_TYPE,
    PER_MESSAGE,
    SYNC_REPLY_MODES,
    TP,
    XLINK,
    CpaError,
    check_cpa,
    load_cpa,
)
from adapter.ebms.cpa.registry import CpaStore

__all__ = [
    "NEXT_MSH",
    "NSMAP",
    "OIN_PARTY_TYPE",
    "PER_MESSAGE",
    "SYNC_REPLY_MODES",
    "TP",
    "XLINK",
    "ChannelSecurity",
    "Cpa",
    "CpaError",
    "CpaParty",
    "CpaStore",
    "check_cpa",
    "load_cpa",
    "parse_duration",
]

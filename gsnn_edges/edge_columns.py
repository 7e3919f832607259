"""The served edge table's columns: written by the library, stored and served by the
service, read back by the client. One home, and nothing heavy imported, so the client
can use it without torch or a database driver."""

from __future__ import annotations

# GET /v1/jobs/{id}/edges, in the API's order
EDGE_COLUMNS = (
    "src",
    "dst",
    "score",
    "p_value",
    "q_value",
    "has_edge",
    "confirmed",
    "effect",
    "confirm_p_value",
    "confirm_q_value",
    "equivalents",
    "stability",
    "score_se",
)
# columns that may be null (unscored, unconfirmed, one replica): NaN in a DataFrame
FLOAT_EDGE_COLUMNS = (
    "score",
    "p_value",
    "q_value",
    "effect",
    "confirm_p_value",
    "confirm_q_value",
    "equivalents",
    "stability",
    "score_se",
)
# what the confirmation's columns hold for a pair it did not confirm (and in tables stored
# before confirmation existed): never a made-up p-value
UNCONFIRMED = {
    "confirmed": False,
    "effect": float("nan"),
    "confirm_p_value": float("nan"),
    "confirm_q_value": float("nan"),
    "equivalents": float("nan"),
}
CONFIRM_COLUMNS = tuple(UNCONFIRMED)
# what a job of one replica (and a table stored before replicas existed) holds in the
# replica columns (gsnn_edges.ensemble)
UNREPLICATED = {"stability": float("nan"), "score_se": float("nan")}
# every column a stored table may lack, with the value it then serves
COLUMN_DEFAULTS = {**UNCONFIRMED, **UNREPLICATED}
# A spreadsheet runs a cell starting with =, +, -, @, tab or CR as a formula (CSV
# injection): the CSV export puts a ' before such node names, and before names starting
# with ' themselves, so that removing one leading ' (the client does) restores them all.
CSV_QUOTED_START = "=+\\-@\\t\\r'"  # a regex character class

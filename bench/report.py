"""Markdown tables for bench/RESULTS.md from the JSON lines of ``bench/sfu.py``.

python bench/sfu.py | tee sfu.jsonl
python -m bench.report < sfu.jsonl
"""

from __future__ import annotations

import json
import sys
from typing import Any

RUN_COLUMNS = [
    ("server", "server"),
    ("n", "N"),
    ("server_cpu_pct", "server CPU %"),
    ("cpu_per_subscriber_pct", "CPU % / subscriber"),
    ("fwd_packets_per_s", "packets/s out"),
    ("rcv_packets_per_s", "packets/s received"),
    ("us_per_fwd_packet", "CPU us / packet"),
    ("fps_min", "fps min"),
    ("fps_median", "fps median"),
    ("fps_decoded_min", "decoded fps min"),
    ("lost_packets", "lost"),
    ("client_cpu_pct", "client CPU %"),
    ("server_core_others_pct", "others on server core %"),
]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> list[str]:
    lines = [
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(_cell(row.get(key)) for key, _ in columns) + " |" for row in rows]
    return lines


#: Servers in table order (bench/sfu.py's); any other comes last.
SERVER_ORDER = ("huddle", "janus", "janus-el1", "relay")


def _server_rank(server: str) -> int:
    return SERVER_ORDER.index(server) if server in SERVER_ORDER else len(SERVER_ORDER)


def _per_packet_table(ratios: list[dict[str, Any]]) -> list[str]:
    """One row per N: huddle's CPU us per packet, then each Janus setting's and ours / theirs."""
    peers = sorted({line["peer"] for line in ratios}, key=_server_rank)
    rows: dict[int, dict[str, Any]] = {}
    for line in ratios:
        row = rows.setdefault(line["n"], {"n": line["n"]})
        row["huddle"] = line["huddle_us_per_fwd_packet"]
        row[line["peer"]] = line["peer_us_per_fwd_packet"]
        row[f"{line['peer']}/ratio"] = line["ratio"]
    columns = [("n", "N"), ("huddle", "huddle us")]
    for peer in peers:
        columns += [(peer, f"{peer} us"), (f"{peer}/ratio", f"huddle / {peer}")]
    return _table([rows[n] for n in sorted(rows)], columns)


def render(lines: list[dict[str, Any]]) -> str:
    """The runs table (huddle, janus, janus-el1, relay, each by N), then the derived results."""
    runs = [line for line in lines if "server" in line and "result" not in line]
    runs.sort(key=lambda line: (_server_rank(line["server"]), line["n"], line.get("round", 1)))
    columns = RUN_COLUMNS
    if any(line.get("round", 1) > 1 for line in runs):
        columns = [*RUN_COLUMNS[:2], ("round", "round"), *RUN_COLUMNS[2:]]
    out = _table([r for r in runs if "error" not in r], columns)
    for failed in (r for r in runs if "error" in r):
        out.append(f"\nFailed: {failed['server']} N={failed['n']}: {failed['error'][:300]}")
    ratios = [line for line in lines if line.get("result") == "same_n_ratio"]
    if ratios:
        out += ["", "Same N, CPU per subscriber (total server CPU / N):", ""]
        out += _table(
            ratios,
            [
                ("n", "N"),
                ("relay_cpu_per_subscriber_pct", "MediaRelay %"),
                ("huddle_cpu_per_subscriber_pct", "huddle %"),
                ("ratio", "ratio"),
            ],
        )
    per_packet = [line for line in lines if line.get("result") == "us_per_packet_ratio"]
    if per_packet:
        out += ["", "Same N, CPU us per forwarded packet (below 1: huddle spends less):", ""]
        out += _per_packet_table(per_packet)
    marginal = [line for line in lines if line.get("result") == "marginal"]
    if marginal:
        out += ["", "Marginal cost of one subscriber (least squares over runs below 90% CPU):", ""]
        out += _table(
            marginal,
            [
                ("server", "server"),
                ("cpu_pct_per_subscriber", "CPU % / subscriber"),
                ("fixed_cpu_pct", "fixed CPU %"),
                ("us_per_packet", "CPU us / packet"),
                ("fit_n", "fit over N"),
                ("max_n_holding_30fps", "largest N holding 30 fps"),
            ],
        )
    for goals in (line for line in lines if line.get("result") == "goals"):
        told = [f"{k} = {_cell(v)}" for k, v in goals.items() if k not in ("bench", "result")]
        out += ["", "Goals: " + ", ".join(told)]
    return "\n".join(out) + "\n"


def main() -> None:
    """Read JSON lines on stdin, write markdown on stdout."""
    lines = [json.loads(text) for text in sys.stdin if text.strip().startswith("{")]
    sys.stdout.write(render(lines))


if __name__ == "__main__":
    main()

/**
 * The README's benchmark tables from a results file:
 * `deno run -A bench/markdown.ts [bench/results/latest.json]` prints, in
 * Markdown, the machine line, every row (path, engine, median, ns/unit,
 * min, max, runs) and the kvmsim/peer ratio table — so the README carries
 * what a run measured, not numbers copied by hand.
 *
 * @module
 */
import { DEFAULT_RESULTS } from "./options.ts";
import { pairingText, peerComparisons, type ResultRow, type Results, rowRate, unitLabel } from "./report.ts";
import { formatRate, nsPerUnit } from "./stats.ts";

const unitOf = (r: ResultRow) => `${unitLabel(r.unit)}/s`;

/** The Markdown text for `res`. */
export function resultsMarkdown(res: Results): string {
  const m = res.machine;
  const out: string[] = [];
  out.push(
    `Measured ${
      res.date.slice(0, 16).replace("T", " ")
    } UTC on ${m.cpu}, ${m.cores} cores, Deno ${m.deno} / V8 ${m.v8}, ` +
      `load average ${
        m.loadavg_1m ?? "unknown"
      }; ${res.settings.runs} runs of ≥ ${res.settings.duration_s} s per path.`,
    "",
    "| path | engine | median | ns/unit | min | max | runs |",
    "|---|---|---|---|---|---|---|",
  );
  for (const r of res.rows) {
    const rate = rowRate(r);
    out.push(
      `| ${r.path} | ${r.engine} | ${formatRate(rate)} ${unitOf(r)} | ${nsPerUnit(rate).toFixed(1)} | ${
        formatRate(r.min)
      } | ${formatRate(r.max)} | ${r.runs} |`,
    );
  }
  const peers = peerComparisons(res.rows).filter(({ peer }) => peer.compared_to !== undefined);
  if (peers.length) {
    out.push(
      "",
      "| peer path | engine | peer | kvmsim path | kvmsim | kvmsim/peer | paired |",
      "|---|---|---|---|---|---|---|",
    );
    for (const { peer: r, ours, ratio } of peers) {
      out.push(
        `| ${r.path} | ${r.engine} | ${formatRate(rowRate(r))} ${unitOf(r)} | ${r.compared_to} | ${
          ours === undefined ? "not run" : `${formatRate(rowRate(ours))} ${unitOf(ours)}`
        } | ${ratio === undefined ? "-" : `${ratio.toFixed(2)}×`} | ${pairingText(r)} |`,
      );
    }
    if (peers.some(({ peer }) => peer.pairing !== undefined)) {
      out.push(
        "",
        "kvmsim/peer of a paired row is the median of per-round ratios: each peer window is bracketed by a " +
          "kvmsim sample just before and one just after it (ratio = their mean / peer), so both see the same " +
          "machine state.",
      );
    }
  }
  for (const s of res.skipped_peers ?? []) out.push("", `Peer ${s.engine} skipped: ${s.reason}`);
  return out.join("\n");
}

if (import.meta.main) {
  const file = Deno.args[0] ?? DEFAULT_RESULTS;
  console.log(resultsMarkdown(JSON.parse(Deno.readTextFileSync(file)) as Results));
}

/**
 * bench/results/latest.svg: a horizontal bar chart of every result row's
 * median rate on a log scale, built as a plain string (no browser, no
 * dependency). Each kvmsim path is followed by the peer rows compared with
 * it, so kvmsim and its peers sit side by side; a peer bar's value text
 * carries kvmsim/peer (the paired median ratio when both were measured in
 * the same rounds, bench/peers/pairing.ts).
 *
 * @module
 */
import { type Engine, type PeerComparison, peerComparisons, type ResultRow, rowRate, unitLabel } from "./report.ts";
import { formatRate } from "./stats.ts";

/** Bar colour per engine. */
const COLOURS: Readonly<Record<Engine, string>> = {
  kvmsim: "#3b6fb6",
  kvm: "#d1762b",
  v86: "#4a9a5b",
  qemu: "#8e5ba8",
  bochs: "#a8894a",
};

const BAR_H = 16;
const GAP = 6;
const GROUP_GAP = 10;
const LABEL_W = 300;
const PLOT_W = 520;
const VALUE_W = 260;
const TOP = 48;
const BOTTOM = 40;

/** Escape text for XML character data and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&apos;"),
  );
}

/** Rows in chart order: each kvmsim row, then its peers; peers whose kvmsim path did not run come last. */
export function chartOrder(rows: readonly ResultRow[]): ResultRow[][] {
  const groups: ResultRow[][] = [];
  const placed = new Set<ResultRow>();
  for (const r of rows) {
    if (r.engine !== "kvmsim") continue;
    const peers = rows.filter((p) => p.engine !== "kvmsim" && p.compared_to === r.path);
    groups.push([r, ...peers]);
    placed.add(r);
    for (const p of peers) placed.add(p);
  }
  for (const r of rows) if (!placed.has(r)) groups.push([r]);
  return groups;
}

function label(r: ResultRow): string {
  return r.engine === "kvmsim" ? r.path : `${r.path} (${r.engine})`;
}

/** After a peer bar's value: kvmsim/peer, and "paired" when both came from the same rounds. */
function ratioNote(c: PeerComparison | undefined): string {
  if (c?.ratio === undefined) return "";
  return ` · kvmsim/peer ${c.ratio.toFixed(c.ratio < 10 ? 2 : 1)}×${c.peer.pairing === undefined ? "" : " paired"}`;
}

/** The SVG document for `rows` (throws on a row whose rate is not positive and finite). */
export function renderChart(rows: readonly ResultRow[], title = "kvmsim exit throughput"): string {
  for (const r of rows) {
    const v = rowRate(r);
    if (!(v > 0 && Number.isFinite(v))) {
      throw new RangeError(`chart: row ${label(r)} has rate ${v}: expected a positive finite rate`);
    }
  }
  const groups = chartOrder(rows);
  const ratios = new Map(peerComparisons(rows).map((c) => [c.peer, c] as const));
  const rates = rows.map(rowRate);
  const lo = rates.length ? Math.floor(Math.log10(Math.min(...rates))) : 0;
  const hi = rates.length ? Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...rates)))) : 1;
  const x = (v: number) => LABEL_W + ((Math.log10(v) - lo) / (hi - lo)) * PLOT_W;
  const nBars = rows.length;
  const plotH = nBars * (BAR_H + GAP) + Math.max(0, groups.length - 1) * GROUP_GAP;
  const width = LABEL_W + PLOT_W + VALUE_W;
  const height = TOP + plotH + BOTTOM;
  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<title>${escapeXml(title)}</title>`);
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  out.push(`<text x="${LABEL_W}" y="20" font-size="14" font-weight="bold">${escapeXml(title)}</text>`);
  out.push(
    `<text x="${LABEL_W}" y="36" fill="#555">median per second, log scale (exits/s; raw paths instructions/s)</text>`,
  );
  let lx = LABEL_W + PLOT_W - 120;
  for (const e of Object.keys(COLOURS) as Engine[]) {
    if (!rows.some((r) => r.engine === e)) continue;
    out.push(
      `<rect class="legend" x="${lx}" y="10" width="10" height="10" fill="${COLOURS[e]}"/><text x="${
        lx + 14
      }" y="19">${e}</text>`,
    );
    lx += 70;
  }
  // Decade grid lines and tick labels.
  for (let d = lo; d <= hi; d++) {
    const gx = LABEL_W + ((d - lo) / (hi - lo)) * PLOT_W;
    out.push(`<line x1="${gx.toFixed(1)}" y1="${TOP - 4}" x2="${gx.toFixed(1)}" y2="${TOP + plotH}" stroke="#ddd"/>`);
    out.push(
      `<text x="${gx.toFixed(1)}" y="${TOP + plotH + 16}" text-anchor="middle" fill="#555">${
        escapeXml(formatRate(10 ** d))
      }</text>`,
    );
  }
  let y = TOP;
  for (const [gi, g] of groups.entries()) {
    if (gi > 0) y += GROUP_GAP;
    for (const r of g) {
      const v = rowRate(r);
      const unit = `${unitLabel(r.unit)}/s`;
      const w = Math.max(1, x(v) - LABEL_W);
      out.push(`<text x="${LABEL_W - 6}" y="${y + BAR_H - 4}" text-anchor="end">${escapeXml(label(r))}</text>`);
      out.push(
        `<rect class="bar" x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${
          COLOURS[r.engine]
        }"><title>${escapeXml(`${label(r)}: ${formatRate(v)} ${unit} — ${r.description}`)}</title></rect>`,
      );
      out.push(
        `<text x="${(LABEL_W + w + 4).toFixed(1)}" y="${y + BAR_H - 4}">${
          escapeXml(`${formatRate(v)} ${unit}${ratioNote(ratios.get(r))}`)
        }</text>`,
      );
      y += BAR_H + GAP;
    }
  }
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}

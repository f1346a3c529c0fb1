// Unit tests of the SVG chart (bench/chart.ts) and the result file names (bench/main.ts). Not timed.
import assert from "node:assert/strict";
import { chartOrder, escapeXml, renderChart } from "../bench/chart.ts";
import { resultFiles } from "../bench/main.ts";
import { pairingOf } from "../bench/peers/pairing.ts";
import { peerRow, type ResultRow, resultRow, rowRate } from "../bench/report.ts";
import { summarize } from "../bench/stats.ts";
import { benchPath } from "./support/bench_paths.ts";

/** Tags balance (every open tag closed in order), text has no raw `<`, every `&` starts an entity. Returns the element names in order. */
function checkXmlish(svg: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  const body = svg.replace(/^<\?xml[^?]*\?>\s*/, "");
  const re = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(body)) !== null) {
    const [, close, name, attrs, selfClose, text, stray] = m;
    if (stray !== undefined) throw new Error(`stray < at ${m.index}: ${body.slice(m.index, m.index + 40)}`);
    const chars = text ?? attrs ?? "";
    for (const a of chars.matchAll(/&/g)) {
      if (!/^&(amp|lt|gt|quot|apos|#\d+);/.test(chars.slice(a.index))) {
        throw new Error(`bare & in ${JSON.stringify(chars)}`);
      }
    }
    if (text !== undefined) continue;
    if (close) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
    } else {
      names.push(name!);
      if (!selfClose) stack.push(name!);
    }
  }
  assert.deepEqual(stack, [], "every element closed");
  assert.equal(names[0], "svg");
  return names;
}

function rows(): ResultRow[] {
  const io = resultRow(benchPath("io-out/switch"), summarize([5e6]));
  const hlt = resultRow(benchPath("hlt/switch"), summarize([9e6]));
  const raw = resultRow(benchPath("raw/dec-jnz"), summarize([63e6]));
  const kvm = peerRow({
    path: "io-out/switch",
    engine: "kvm",
    unit: "exits",
    loop: "switch",
    description: 'kvm <pvm> & "friends"',
    compared_to: "io-out/switch",
  }, summarize([70e3]));
  const v86 = peerRow({
    path: "io-out/port-handler",
    engine: "v86",
    unit: "exits",
    loop: "port-handler",
    description: "v86",
    compared_to: "io-out/switch",
  }, summarize([16e6]));
  const pairedV86 = { ...v86, pairing: pairingOf("io-out/switch", [10e6, 5e6, 6e6], [4e6, 4e6, 4e6]) };
  const orphan = peerRow({
    path: "hlt/other",
    engine: "kvm",
    unit: "exits",
    loop: "switch",
    description: "o",
    compared_to: "mmio-write/switch",
  }, summarize([1e3]));
  return [raw, io, hlt, kvm, pairedV86, orphan];
}

Deno.test("chart: XML-ish document with one bar per row and escaped text", () => {
  const rs = rows();
  const svg = renderChart(rs, "bench <run> & co");
  checkXmlish(svg);
  assert.equal([...svg.matchAll(/class="bar"/g)].length, rs.length);
  assert.ok(svg.includes("bench &lt;run&gt; &amp; co"));
  assert.ok(svg.includes("kvm &lt;pvm&gt; &amp; &quot;friends&quot;"));
  assert.ok(!svg.includes("<pvm>"));
  for (const r of rs) {
    assert.ok(
      svg.includes(`>${r.engine === "kvmsim" ? r.path : `${r.path} (${r.engine})`}</text>`),
      `label of ${r.path} ${r.engine}`,
    );
  }
  assert.match(svg, /63\.0 M instr\/s/);
  assert.match(svg, /70\.0 k exits\/s · kvmsim\/peer 71\.4×</);
  // A paired peer row shows the median of its per-round ratios (10/4, 5/4, 6/4 → 1.50), not 5 M / 16 M.
  assert.match(svg, /16\.0 M exits\/s · kvmsim\/peer 1\.50× paired</);
  assert.match(svg, />1\.0 k exits\/s</, "an orphan peer (its kvmsim path not run) has no ratio");
});

Deno.test("chart: log-scale bar widths grow with the rate; a bar per row even with no peers", () => {
  const rs = rows();
  const svg = renderChart(rs);
  const widths = [...svg.matchAll(/class="bar" x="[\d.]+" y="[\d.]+" width="([\d.]+)"/g)].map((m) => Number(m[1]));
  const order = chartOrder(rs).flat();
  assert.equal(widths.length, order.length);
  const byRate = order.map((r, i) => [rowRate(r), widths[i]!] as const).sort((
    a,
    b,
  ) => a[0] - b[0]);
  for (let i = 1; i < byRate.length; i++) {
    assert.ok(byRate[i]![1] > byRate[i - 1]![1], `width grows with rate at ${byRate[i]![0]}`);
  }
  // Log scale: 50 k → 5 M is two decades, 5 M → 50 M one: equal width per decade.
  const mk = (r: number) => resultRow(benchPath("io-out/switch"), summarize([r]));
  const w3 = [
    ...renderChart([mk(5e4), mk(5e6), mk(5e7)]).matchAll(/class="bar" x="[\d.]+" y="[\d.]+" width="([\d.]+)"/g),
  ].map((m) => Number(m[1]));
  assert.ok(Math.abs((w3[1]! - w3[0]!) - 2 * (w3[2]! - w3[1]!)) < 0.3, `decade widths ${w3.join(", ")}`);
  const one = checkXmlish(renderChart([rs[1]!]));
  assert.equal(one.filter((n) => n === "rect").length, 3, "background, legend, one bar");
  assert.throws(
    () => renderChart([{ ...rs[1]!, exits_per_s: 0 } as ResultRow]),
    /io-out\/switch has rate 0: expected a positive finite rate/,
  );
});

Deno.test("chart order: each kvmsim row followed by its peers; orphan peers last", () => {
  const groups = chartOrder(rows());
  assert.deepEqual(groups.map((g) => g.map((r) => `${r.path}:${r.engine}`)), [
    ["raw/dec-jnz:kvmsim"],
    ["io-out/switch:kvmsim", "io-out/switch:kvm", "io-out/port-handler:v86"],
    ["hlt/switch:kvmsim"],
    ["hlt/other:kvm"],
  ]);
  assert.equal(escapeXml(`a&b<c>"d'`), "a&amp;b&lt;c&gt;&quot;d&apos;");
});

Deno.test("result files: dated JSON and SVG beside latest.json", () => {
  assert.deepEqual(resultFiles("bench/results/latest.json", "2026-12-01T23:29:01.000Z", "vm"), {
    dir: "bench/results",
    dated: "bench/results/2026-12-01-vm.json",
    svg: "bench/results/latest.svg",
  });
  assert.deepEqual(resultFiles("out.json", "2026-01-02T00:00:00Z", "a/b c"), {
    dir: undefined,
    dated: "2026-01-02-a_b_c.json",
    svg: "out.svg",
  });
  assert.throws(() => resultFiles("x.json", "yesterday", "h"), /results date yesterday: expected an ISO date/);
});

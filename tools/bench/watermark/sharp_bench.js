// One case of the watermark benchmark, in its own process: composites the mark (the PNG our
// bench wrote, at the same place) into `input` with sharp on one thread, encodes it in the
// input's format with the settings run.py passes, and prints one JSON line.
// usage: node sharp_bench.js <input> <mark.png> <left> <top> <format> <options-json> <reps> <out>
const fs = require('fs');
const sharp = require('sharp');

function statusKb(field) {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(field));
  return Number(line.split(/\s+/)[1]);
}

async function main() {
  const [input, markPath, left, top, format, options, reps, out] = process.argv.slice(2);
  sharp.concurrency(1);
  sharp.cache(false);
  const src = fs.readFileSync(input);
  const mark = fs.readFileSync(markPath);
  const opts = JSON.parse(options);
  const once = () => sharp(src)
    .rotate()
    .composite([{ input: mark, left: Number(left), top: Number(top) }])
    .toFormat(format, opts)
    .toBuffer();
  const rssBefore = statusKb('VmRSS:');
  let output = await once();
  // The process's own high-water mark over one image, as the Rust side measures it. Not
  // getrusage's maxRSS: Linux carries that across exec, so it would report the (larger)
  // parent that spawned this process.
  const rssPeak = statusKb('VmHWM:');
  const times = [];
  for (let i = 0; i < Math.max(1, Number(reps)); i++) {
    const t = process.hrtime.bigint();
    output = await once();
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  fs.writeFileSync(out, output);
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({
    ms: times[Math.floor(times.length / 2)],
    min_ms: times[0],
    bytes: output.length,
    rss_before_kb: rssBefore,
    rss_peak_kb: rssPeak,
  }));
}

main().catch((e) => { console.error(e); process.exit(1); });

// The publisher mix with sharp, in one process as one function instance would run it: for each
// case of the list, read the file, composite the mark (the PNG our bench wrote for its size, at
// the same place, read once beforehand: our function has its mark built in), encode it in the
// input's format with the settings run.py passes, write it to <out>. Prints one JSON line: the
// milliseconds of each image, output bytes, resident memory before and at peak (kB). The first
// case is done once more before, untimed, as the Rust side does.
// usage: node sharp_mix.js <list.json> <out>
//   list.json: [{"input", "mark", "left", "top", "format", "options"}, ...]
const fs = require('fs');
const sharp = require('sharp');

function statusKb(field) {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(field));
  return Number(line.split(/\s+/)[1]);
}

async function main() {
  const [listPath, out] = process.argv.slice(2);
  sharp.concurrency(1);
  sharp.cache(false);
  const cases = JSON.parse(fs.readFileSync(listPath, 'utf8'));
  const marks = new Map();
  for (const c of cases) {
    if (!marks.has(c.mark)) marks.set(c.mark, fs.readFileSync(c.mark));
  }
  const publish = async (c) => {
    const t = process.hrtime.bigint();
    const src = fs.readFileSync(c.input);
    const output = await sharp(src)
      .rotate()
      .composite([{ input: marks.get(c.mark), left: c.left, top: c.top }])
      .toFormat(c.format, c.options)
      .toBuffer();
    fs.writeFileSync(out, output);
    return [Number(process.hrtime.bigint() - t) / 1e6, output.length];
  };
  const rssBefore = statusKb('VmRSS:');
  if (cases.length) await publish(cases[0]);
  const ms = [];
  let bytes = 0;
  for (const c of cases) {
    const [t, b] = await publish(c);
    ms.push(t);
    bytes += b;
  }
  console.log(JSON.stringify({
    ms,
    bytes,
    rss_before_kb: rssBefore,
    rss_peak_kb: statusKb('VmHWM:'),
  }));
}

main().catch((e) => { console.error(e); process.exit(1); });

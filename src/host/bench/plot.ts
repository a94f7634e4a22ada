/**
 * Renders a Vega-Lite specification to SVG, headless (no browser, no canvas): vega and
 * vega-lite are loaded only here, and only when a benchmark draws a plot.
 */
import { createRequire } from 'node:module';

/** The parts of vega and vega-lite this file uses. */
interface VegaLite {
  compile(spec: Record<string, unknown>): { spec: unknown };
}
interface Vega {
  parse(spec: unknown): unknown;
  View: new (runtime: unknown, options: { renderer: 'none' }) => { toSVG(): Promise<string>; finalize(): void };
}

export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  // Loaded here, when a plot is drawn: the libraries are large and only the benchmark command
  // needs them. With require (both are CommonJS packages): the bundled command line
  // (scripts/bundle.mjs) runs as a script, where Node 20 has no import() without a flag.
  const load = createRequire(import.meta.url);
  const vegaLite = load('vega-lite') as VegaLite;
  const vega = load('vega') as Vega;
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

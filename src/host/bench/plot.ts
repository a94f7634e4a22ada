/**
 * Renders a Vega-Lite specification to SVG, headless (no browser, no canvas): vega and
 * vega-lite are loaded only here, and only when a benchmark draws a plot.
 */

/** The parts of vega and vega-lite this file uses. */
interface VegaLite {
  compile(spec: Record<string, unknown>): { spec: unknown };
}
interface Vega {
  parse(spec: unknown): unknown;
  View: new (runtime: unknown, options: { renderer: 'none' }) => { toSVG(): Promise<string>; finalize(): void };
}

export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  // A dynamic import: the libraries are large and only the benchmark command needs them.
  const vegaLite = (await import('vega-lite')) as unknown as VegaLite;
  const vega = (await import('vega')) as unknown as Vega;
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

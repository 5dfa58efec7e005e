// Geometry of the percentage charts: values 0–100 onto a plot area, and the points of
// a trend line (gaps where a week has no decided record).

export interface Plot {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** The y coordinate of a percentage (0 at the bottom, 100 at the top), clamped. */
export function yOf(pct: number, plot: Plot): number {
  const v = Math.max(0, Math.min(100, pct));
  const h = plot.height - plot.top - plot.bottom;
  return plot.top + h * (1 - v / 100);
}

/** Bars of equal width filling the plot's width, `gap` (0–1) of each slot left empty. */
export function barSlots(count: number, plot: Plot, gap = 0.25): { x: number; width: number }[] {
  const w = plot.width - plot.left - plot.right;
  if (count <= 0) return [];
  const slot = w / count;
  return Array.from({ length: count }, (_, i) => ({ x: plot.left + i * slot + (slot * gap) / 2, width: slot * (1 - gap) }));
}

/** SVG path of a line through the points with a value; a missing value breaks the line. */
export function linePath(values: (number | null | undefined)[], plot: Plot): string {
  const w = plot.width - plot.left - plot.right;
  const step = values.length > 1 ? w / (values.length - 1) : 0;
  let d = '';
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || v === undefined) {
      pen = false;
      return;
    }
    const x = plot.left + (values.length > 1 ? i * step : w / 2);
    d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${yOf(v, plot).toFixed(1)}`;
    pen = true;
  });
  return d;
}

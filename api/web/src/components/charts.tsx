// Two small SVG charts: attendance % per student (bars, with the threshold line) and
// the weekly trend (a line). Each has a text alternative.
import { barSlots, linePath, yOf, type Plot } from '../chartScale';

const GRID = [0, 25, 50, 75, 100];

function Axis({ plot }: { plot: Plot }) {
  return (
    <g className="axis">
      {GRID.map((g) => (
        <g key={g}>
          <line x1={plot.left} x2={plot.width - plot.right} y1={yOf(g, plot)} y2={yOf(g, plot)} className="grid" />
          <text x={plot.left - 6} y={yOf(g, plot) + 4} textAnchor="end">
            {g}%
          </text>
        </g>
      ))}
    </g>
  );
}

export function BarChart({
  bars,
  threshold,
  label,
}: {
  bars: { label: string; value: number | null | undefined }[];
  threshold: number;
  label: string;
}) {
  const plot: Plot = { width: Math.max(320, bars.length * 36 + 100), height: 250, left: 44, right: 48, top: 24, bottom: 64 };
  const slots = barSlots(bars.length, plot);
  return (
    <div className="chart-scroll">
      <svg viewBox={`0 0 ${plot.width} ${plot.height}`} width={plot.width} height={plot.height} role="img" aria-label={label}>
        <Axis plot={plot} />
        {bars.map((b, i) => {
          const v = b.value ?? 0;
          const y = yOf(v, plot);
          const below = b.value !== null && b.value !== undefined && b.value < threshold;
          return (
            <g key={`${b.label}-${i}`}>
              <rect
                x={slots[i].x}
                y={y}
                width={slots[i].width}
                height={yOf(0, plot) - y}
                className={below ? 'bar below' : 'bar'}
              >
                <title>{`${b.label}: ${b.value === null || b.value === undefined ? 'no sessions' : `${b.value.toFixed(1)}%`}`}</title>
              </rect>
              <text
                x={slots[i].x + slots[i].width / 2}
                y={plot.height - plot.bottom + 12}
                transform={`rotate(40 ${slots[i].x + slots[i].width / 2} ${plot.height - plot.bottom + 12})`}
                className="bar-label"
              >
                {b.label}
              </text>
            </g>
          );
        })}
        <line
          x1={plot.left}
          x2={plot.width - plot.right}
          y1={yOf(threshold, plot)}
          y2={yOf(threshold, plot)}
          className="threshold"
          data-testid="threshold-line"
        />
        <text x={plot.left + 4} y={plot.top - 8} className="threshold-label">
          - - {threshold}% required
        </text>
      </svg>
    </div>
  );
}

export function LineChart({ points, label }: { points: { label: string; value: number | null | undefined }[]; label: string }) {
  const plot: Plot = { width: Math.max(320, points.length * 60 + 60), height: 200, left: 44, right: 16, top: 12, bottom: 36 };
  const values = points.map((p) => p.value);
  const w = plot.width - plot.left - plot.right;
  const x = (i: number) => plot.left + (points.length > 1 ? (i * w) / (points.length - 1) : w / 2);
  return (
    <div className="chart-scroll">
      <svg viewBox={`0 0 ${plot.width} ${plot.height}`} width={plot.width} height={plot.height} role="img" aria-label={label}>
        <Axis plot={plot} />
        <path d={linePath(values, plot)} className="trend" />
        {points.map((p, i) =>
          p.value === null || p.value === undefined ? null : (
            <circle key={p.label} cx={x(i)} cy={yOf(p.value, plot)} r={4} className="trend-point">
              <title>{`${p.label}: ${p.value.toFixed(1)}%`}</title>
            </circle>
          ),
        )}
        {points.map((p, i) => (
          <text key={`l-${p.label}`} x={x(i)} y={plot.height - 12} textAnchor="middle" className="bar-label">
            {p.label}
          </text>
        ))}
      </svg>
    </div>
  );
}

import { describe, expect, it } from 'vitest';
import { barSlots, linePath, yOf, type Plot } from './chartScale';

const plot: Plot = { width: 240, height: 120, left: 20, right: 20, top: 10, bottom: 10 };

describe('chart geometry', () => {
  it('maps 0–100 % onto the plot, clamped', () => {
    expect(yOf(0, plot)).toBe(110);
    expect(yOf(100, plot)).toBe(10);
    expect(yOf(75, plot)).toBe(35);
    expect(yOf(140, plot)).toBe(10);
    expect(yOf(-5, plot)).toBe(110);
  });
  it('gives bars equal slots across the width', () => {
    const s = barSlots(4, plot, 0.5);
    expect(s.map((b) => b.width)).toEqual([25, 25, 25, 25]);
    expect(s[0].x).toBe(32.5);
    expect(s[3].x).toBe(182.5);
    expect(barSlots(0, plot)).toEqual([]);
  });
  it('breaks the trend line where a week has no figure', () => {
    expect(linePath([100, null, 50], plot)).toBe('M20.0,10.0M220.0,60.0');
    expect(linePath([0, 100], plot)).toBe('M20.0,110.0L220.0,10.0');
  });
});

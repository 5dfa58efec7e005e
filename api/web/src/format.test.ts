import { describe, expect, it } from 'vitest';
import { formatPercent, isoDate } from './format';
import { verdictText } from './verdicts';

describe('format', () => {
  it('writes percentages and their absence', () => {
    expect(formatPercent(66.666)).toBe('66.7%');
    expect(formatPercent(null)).toBe('—');
  });
  it('counts local days back', () => {
    expect(isoDate(0, new Date(2026, 10, 3, 12))).toBe('2026-11-03');
    expect(isoDate(3, new Date(2026, 10, 3, 12))).toBe('2026-10-31');
  });
});

describe('verdictText', () => {
  it('gives the reason of a rejection, preferring the API note', () => {
    expect(verdictText({ verdict: 'rejected', reason: 'several_faces' })).toBe('rejected: more than one face');
    expect(verdictText({ verdict: 'rejected', reason: 'no_face', note: 'no face was found in the photo' })).toBe(
      'rejected: no face was found in the photo',
    );
    expect(verdictText({ verdict: 'accepted' })).toBe('accepted');
    expect(verdictText({ verdict: 'pending' })).toBe('being checked');
  });
});

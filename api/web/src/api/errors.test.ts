import { describe, expect, it } from 'vitest';
import { ApiError, describeError, errorFromBody } from './errors';
import { fileNameFromDisposition } from './client';

describe('errorFromBody', () => {
  it("shows the API's own message and code", () => {
    const e = errorFromBody(422, { error: { code: 'duplicate_roll_no', message: 'roll number 21CS001 is taken' } });
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(422);
    expect(e.code).toBe('duplicate_roll_no');
    expect(describeError(e)).toBe('roll number 21CS001 is taken');
  });

  it('falls back to a sentence per status when the body says nothing', () => {
    expect(errorFromBody(401, undefined).message).toMatch(/unknown or revoked/);
    expect(errorFromBody(404, 'text').isNotFound).toBe(true);
    expect(errorFromBody(502, { error: {} }).message).toBe('The server failed to answer');
    expect(errorFromBody(418, null).message).toBe('Request failed (418)');
  });
});

describe('fileNameFromDisposition', () => {
  it('reads quoted, plain and RFC 5987 names', () => {
    expect(fileNameFromDisposition('attachment; filename="cse-3a.csv"')).toBe('cse-3a.csv');
    expect(fileNameFromDisposition('attachment; filename=report.csv')).toBe('report.csv');
    expect(fileNameFromDisposition("attachment; filename*=UTF-8''CSE%203A.xlsx")).toBe('CSE 3A.xlsx');
    expect(fileNameFromDisposition(null)).toBeNull();
    expect(fileNameFromDisposition('inline')).toBeNull();
  });
});

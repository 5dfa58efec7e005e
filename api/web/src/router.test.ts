import { describe, expect, it } from 'vitest';
import { href, parseHash } from './router';

const ID = '0b5c6f5e-1d2a-4c3b-9e8f-123456789abc';

describe('parseHash', () => {
  it('reads every screen', () => {
    expect(parseHash('')).toEqual({ name: 'attendance' });
    expect(parseHash('#/')).toEqual({ name: 'attendance' });
    expect(parseHash(`#/sessions/${ID}`)).toEqual({ name: 'session', id: ID });
    expect(parseHash('#/students/new')).toEqual({ name: 'student-new' });
    expect(parseHash(`#/students/${ID}`)).toEqual({ name: 'student', id: ID });
    expect(parseHash('#/students/batches')).toEqual({ name: 'batch' });
    expect(parseHash(`#/students/batches/${ID}`)).toEqual({ name: 'batch', id: ID });
    expect(parseHash(`#/classes/${ID}`)).toEqual({ name: 'class', id: ID });
    expect(parseHash('#/settings')).toEqual({ name: 'settings' });
  });

  it('keeps the query of list screens', () => {
    const r = parseHash(`#/sessions?class=${ID}&from=2026-11-01`);
    expect(r.name).toBe('sessions');
    if (r.name !== 'sessions') throw new Error();
    expect(r.query.get('class')).toBe(ID);
    expect(r.query.get('from')).toBe('2026-11-01');
  });

  it('sends anything else to not-found, ids included', () => {
    expect(parseHash('#/sessions/not-a-uuid').name).toBe('not-found');
    expect(parseHash('#/students/new/extra').name).toBe('not-found');
    expect(parseHash('#/nowhere').name).toBe('not-found');
    expect(parseHash('#/settings/x').name).toBe('not-found');
  });
});

describe('href', () => {
  it('leaves out empty query values', () => {
    expect(href('/sessions', { class: ID, from: '', to: undefined })).toBe(`#/sessions?class=${ID}`);
    expect(href('/')).toBe('#/');
  });
  it('round-trips through parseHash', () => {
    const r = parseHash(href('/analytics', { class: ID, threshold: '80' }));
    if (r.name !== 'analytics') throw new Error(r.name);
    expect(r.query.get('threshold')).toBe('80');
  });
});

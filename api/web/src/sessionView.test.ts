import { describe, expect, it } from 'vitest';
import { boxPosition, classList, labelFaces, unknownFaces, type Face, type RecordRow } from './sessionView';

const record = (student_id: string, name: string, status: RecordRow['status']): RecordRow => ({
  student_id,
  name,
  roll_no: name.toUpperCase(),
  status,
  source: 'auto',
  updated_at: '2026-11-20T04:00:00Z',
});
const face = (face_id: string, photo_id: string, face_index: number, student_id?: string): Face => ({
  face_id,
  photo_id,
  face_index,
  score: 0.99,
  student_id,
  box: { x1: 10, y1: 10, x2: 50, y2: 60 },
});

describe('labelFaces', () => {
  it("names each face by its student, 'unknown' otherwise, per photo in index order", () => {
    const detail = {
      records: [record('s1', 'Asha', 'present'), record('s2', 'Ravi', 'absent')],
      faces: [face('f2', 'p1', 1), face('f1', 'p1', 0, 's1'), face('f3', 'p2', 0, 'gone')],
    };
    const byPhoto = labelFaces(detail);
    expect(byPhoto.get('p1')!.map((f) => [f.face.face_id, f.label, f.known])).toEqual([
      ['f1', 'Asha', true],
      ['f2', 'unknown', false],
    ]);
    expect(byPhoto.get('p2')![0].label).toBe('student not in this class');
    expect(unknownFaces(detail).map((f) => f.face_id)).toEqual(['f2']);
  });
});

describe('boxPosition', () => {
  it('places a box in percentages of the photo', () => {
    expect(boxPosition({ x1: 100, y1: 50, x2: 300, y2: 150 }, 1000, 500)).toEqual({
      left: '10.000%',
      top: '10.000%',
      width: '20.000%',
      height: '20.000%',
    });
  });
  it('clamps boxes that leave the photo and orders swapped corners', () => {
    expect(boxPosition({ x1: 1100, y1: -20, x2: 900, y2: 100 }, 1000, 500)).toEqual({
      left: '90.000%',
      top: '0.000%',
      width: '10.000%',
      height: '20.000%',
    });
  });
  it('draws nothing without a size or for an empty box', () => {
    expect(boxPosition({ x1: 0, y1: 0, x2: 10, y2: 10 }, 0, 100)).toBeNull();
    expect(boxPosition({ x1: 5, y1: 5, x2: 5, y2: 40 }, 100, 100)).toBeNull();
  });
});

describe('classList', () => {
  it('splits the records by status', () => {
    const l = classList([record('a', 'A', 'present'), record('b', 'B', 'absent'), record('c', 'C', 'unmatched')]);
    expect(l.present.map((r) => r.name)).toEqual(['A']);
    expect(l.absent.map((r) => r.name)).toEqual(['B']);
    expect(l.unmatched.map((r) => r.name)).toEqual(['C']);
  });
});

// What the result screen shows of a session: the faces of each photo with their
// labels and where to draw their boxes, and the class list by status.
import type { Schemas } from './api/client';

export type SessionDetail = Schemas['SessionDetailOut'];
export type Face = Schemas['FaceOut'];
export type RecordRow = Schemas['RecordOut'];

export interface LabelledFace {
  face: Face;
  /** The student's name, or `unknown`. */
  label: string;
  known: boolean;
}

/** Each face of the session labelled with its student's name (or `unknown`), by photo id. */
export function labelFaces(detail: Pick<SessionDetail, 'faces' | 'records'>): Map<string, LabelledFace[]> {
  const names = new Map(detail.records.map((r) => [r.student_id, r.name]));
  const byPhoto = new Map<string, LabelledFace[]>();
  for (const face of detail.faces) {
    const name = face.student_id ? names.get(face.student_id) : undefined;
    // A face matched to a student no longer in the class list still names its student.
    const label = face.student_id ? (name ?? 'student not in this class') : 'unknown';
    const list = byPhoto.get(face.photo_id) ?? [];
    list.push({ face, label, known: Boolean(face.student_id) });
    byPhoto.set(face.photo_id, list);
  }
  for (const list of byPhoto.values()) list.sort((a, b) => a.face.face_index - b.face.face_index);
  return byPhoto;
}

export interface BoxPosition {
  left: string;
  top: string;
  width: string;
  height: string;
}

/** A face box (photo pixels) as percentages of the photo, clamped to it. */
export function boxPosition(
  box: { x1: number; y1: number; x2: number; y2: number },
  photoWidth: number,
  photoHeight: number,
): BoxPosition | null {
  if (!(photoWidth > 0 && photoHeight > 0)) return null;
  const clamp = (v: number, max: number) => Math.max(0, Math.min(max, v));
  const x1 = clamp(Math.min(box.x1, box.x2), photoWidth);
  const x2 = clamp(Math.max(box.x1, box.x2), photoWidth);
  const y1 = clamp(Math.min(box.y1, box.y2), photoHeight);
  const y2 = clamp(Math.max(box.y1, box.y2), photoHeight);
  if (x2 <= x1 || y2 <= y1) return null;
  const pct = (v: number, of: number) => `${((v / of) * 100).toFixed(3)}%`;
  return {
    left: pct(x1, photoWidth),
    top: pct(y1, photoHeight),
    width: pct(x2 - x1, photoWidth),
    height: pct(y2 - y1, photoHeight),
  };
}

export interface ClassList {
  present: RecordRow[];
  absent: RecordRow[];
  unmatched: RecordRow[];
}

export function classList(records: RecordRow[]): ClassList {
  return {
    present: records.filter((r) => r.status === 'present'),
    absent: records.filter((r) => r.status === 'absent'),
    unmatched: records.filter((r) => r.status === 'unmatched'),
  };
}

/** Faces matched to nobody: the tray of faces a person can name. */
export function unknownFaces(detail: Pick<SessionDetail, 'faces'>): Face[] {
  return detail.faces.filter((f) => !f.student_id);
}

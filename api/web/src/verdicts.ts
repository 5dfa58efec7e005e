// A registration photo's verdict in words a teacher understands.
import type { Schemas } from './api/client';

export type StudentPhoto = Schemas['StudentPhotoOut'];

const REASONS: Record<Schemas['Rejection'], string> = {
  no_face: 'no face found',
  several_faces: 'more than one face',
  face_too_small: 'the face is too small',
  low_confidence: 'the face is not clear enough',
  unreadable: 'the file could not be read',
};

export function verdictText(p: Pick<StudentPhoto, 'verdict' | 'reason' | 'note'>): string {
  switch (p.verdict) {
    case 'pending':
      return 'being checked';
    case 'accepted':
      return p.note ? `accepted (${p.note})` : 'accepted';
    case 'rejected': {
      const why = p.note ?? (p.reason ? REASONS[p.reason] : undefined);
      return why ? `rejected: ${why}` : 'rejected';
    }
  }
}

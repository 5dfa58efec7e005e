import { describe, expect, it } from 'vitest';
import { addPhotos, MAX_PHOTO_BYTES } from './photoSelection';

const file = (name: string, type = 'image/jpeg', size = 1000) =>
  new File([new Uint8Array(size)], name, { type, lastModified: 1 });

describe('addPhotos', () => {
  it('takes photos up to the maximum and says why it refuses the rest', () => {
    const a = file('a.jpg');
    const s = addPhotos([a], [file('b.png', 'image/png'), file('c.webp', 'image/webp'), file('d.jpg')], 3);
    expect(s.files.map((f) => f.name)).toEqual(['a.jpg', 'b.png', 'c.webp']);
    expect(s.problems).toEqual(['d.jpg: at most 3 photos']);
  });
  it('refuses other types, oversized files and the same file twice', () => {
    const a = file('a.jpg');
    const s = addPhotos([a], [file('x.gif', 'image/gif'), file('big.jpg', 'image/jpeg', MAX_PHOTO_BYTES + 1), file('a.jpg')], 5);
    expect(s.files).toEqual([a]);
    expect(s.problems).toEqual(['x.gif: not a JPEG, PNG or WebP photo', 'big.jpg: larger than 10 MB', 'a.jpg: already added']);
  });
});

// Which picked files an upload takes: photos the API accepts (JPEG, PNG, WebP, at most
// 10 MB each), no file twice, at most `max`; the rest is named with the reason.

export const ACCEPTED_TYPES = ['image/jpeg', 'image/png', 'image/webp'];
export const MAX_PHOTO_BYTES = 10 * 1024 * 1024;

export interface Selection {
  files: File[];
  problems: string[];
}

function sameFile(a: File, b: File): boolean {
  return a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;
}

export function addPhotos(current: File[], incoming: Iterable<File>, max: number): Selection {
  const files = [...current];
  const problems: string[] = [];
  for (const f of incoming) {
    if (!ACCEPTED_TYPES.includes(f.type)) {
      problems.push(`${f.name}: not a JPEG, PNG or WebP photo`);
    } else if (f.size > MAX_PHOTO_BYTES) {
      problems.push(`${f.name}: larger than 10 MB`);
    } else if (files.some((g) => sameFile(f, g))) {
      problems.push(`${f.name}: already added`);
    } else if (files.length >= max) {
      problems.push(`${f.name}: at most ${max} photo${max === 1 ? '' : 's'}`);
    } else {
      files.push(f);
    }
  }
  return { files, problems };
}

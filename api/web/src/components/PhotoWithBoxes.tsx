// A session photo with a box around every face, labelled with the student's name or
// "unknown". Boxes are placed in percentages of the photo, so they follow its size on
// any screen. The photo is shown in its stored pixel orientation (no EXIF rotation),
// the grid the boxes were measured in.
import { useEffect, useState } from 'react';
import { fetchBlob } from '../api/client';
import { describeError } from '../api/errors';
import { boxPosition, type LabelledFace } from '../sessionView';

export function PhotoWithBoxes({
  path,
  number,
  faces,
  width,
  height,
}: {
  path: string;
  number: number;
  faces: LabelledFace[];
  width?: number;
  height?: number;
}) {
  const [url, setUrl] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [size, setSize] = useState<{ w: number; h: number } | null>(
    width && height ? { w: width, h: height } : null,
  );
  useEffect(() => {
    let objectUrl: string | null = null;
    let cancelled = false;
    fetchBlob(path)
      .then(({ blob }) => {
        if (cancelled) return;
        objectUrl = URL.createObjectURL(blob);
        setUrl(objectUrl);
      })
      .catch((e) => !cancelled && setError(describeError(e)));
    return () => {
      cancelled = true;
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    };
  }, [path]);

  const known = faces.filter((f) => f.known).length;
  const caption = `Photo ${number}: ${faces.length} face${faces.length === 1 ? '' : 's'}, ${known} recognised`;
  return (
    <figure className="photo-boxes">
      {error ? (
        <p className="state empty">Photo {number} is not available ({error}).</p>
      ) : !url ? (
        <div className="img-loading tall" aria-label={`Photo ${number} (loading)`} />
      ) : (
        <div className="photo-frame">
          <img
            src={url}
            alt={caption}
            onLoad={(e) => {
              const img = e.currentTarget;
              if (!size) setSize({ w: img.naturalWidth, h: img.naturalHeight });
            }}
          />
          {size &&
            faces.map(({ face, label, known: isKnown }) => {
              const pos = face.box ? boxPosition(face.box, size.w, size.h) : null;
              if (!pos) return null;
              return (
                <div
                  key={face.face_id}
                  className={`face-box ${isKnown ? 'known' : 'unknown'}`}
                  style={pos}
                  data-testid="face-box"
                  data-label={label}
                >
                  <span className="face-label">{label}</span>
                </div>
              );
            })}
        </div>
      )}
      <figcaption>{caption}</figcaption>
    </figure>
  );
}

// An image the API serves only with the key (face crops, session photos): fetched as a
// blob, shown through an object URL.
import { useEffect, useState, type ImgHTMLAttributes } from 'react';
import { fetchBlob } from '../api/client';
import { describeError } from '../api/errors';

type Props = Omit<ImgHTMLAttributes<HTMLImageElement>, 'src'> & { path: string; alt: string };

export function AuthImage({ path, alt, ...rest }: Props) {
  const [url, setUrl] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let objectUrl: string | null = null;
    let cancelled = false;
    setUrl(null);
    setError(null);
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
  if (error) return <span className="img-missing" title={error}>{`${alt}: ${error}`}</span>;
  if (!url) return <span className="img-loading" aria-label={`${alt} (loading)`} />;
  return <img src={url} alt={alt} {...rest} />;
}

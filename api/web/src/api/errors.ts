// Errors as the API reports them: `{"error": {"code", "message"}}` with its status.

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }

  static network(cause: unknown): ApiError {
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    return new ApiError(0, 'network', `The server could not be reached${detail}`);
  }

  get isNotFound(): boolean {
    return this.status === 404;
  }

  get isUnauthorized(): boolean {
    return this.status === 401;
  }
}

const FALLBACK: Record<number, string> = {
  400: 'The request was not accepted',
  401: 'The API key is unknown or revoked',
  403: 'Your key may not do this',
  404: 'Not found',
  409: 'This conflicts with the current state',
  413: 'The upload is too large',
  415: 'This kind of file is not accepted',
  422: 'The request could not be processed',
  503: 'The service is busy or unavailable; try again shortly',
};

/** An [`ApiError`] from an error answer's status and (parsed JSON) body. */
export function errorFromBody(status: number, body: unknown): ApiError {
  if (body && typeof body === 'object' && 'error' in body) {
    const detail = (body as { error: unknown }).error;
    if (detail && typeof detail === 'object') {
      const { code, message } = detail as { code?: unknown; message?: unknown };
      if (typeof message === 'string' && message.length > 0) {
        return new ApiError(status, typeof code === 'string' ? code : 'error', message);
      }
    }
  }
  const message = FALLBACK[status] ?? (status >= 500 ? 'The server failed to answer' : `Request failed (${status})`);
  return new ApiError(status, 'error', message);
}

/** What to show a person for any thrown value. */
export function describeError(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

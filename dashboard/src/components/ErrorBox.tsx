import type { ApiError } from '../api/client';

/** Shows a problem body's `detail` (and field errors) to the user. */
export function ErrorBox({ error, onDismiss }: { error: ApiError | Error | string | null | undefined; onDismiss?: () => void }) {
  if (!error) return null;
  const text = typeof error === 'string' ? error : error.message;
  return (
    <div className="error-box" role="alert" data-testid="error">
      <span>{text}</span>
      {onDismiss && (
        <button type="button" className="link" onClick={onDismiss} aria-label="Dismiss">
          ×
        </button>
      )}
    </div>
  );
}

// A destructive action asks first, in a modal dialog (keyboard: Esc cancels, focus
// starts on Cancel).
import { useEffect, useRef, useState, type ReactNode } from 'react';

export function ConfirmButton({
  label,
  question,
  confirmLabel,
  onConfirm,
  className = 'danger',
  disabled,
}: {
  label: ReactNode;
  question: ReactNode;
  confirmLabel: string;
  onConfirm: () => void | Promise<void>;
  className?: string;
  disabled?: boolean;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const [busy, setBusy] = useState(false);
  const [open, setOpen] = useState(false);
  useEffect(() => {
    if (open) {
      dialog.current?.showModal?.();
      cancel.current?.focus();
    } else {
      dialog.current?.close?.();
    }
  }, [open]);
  return (
    <>
      <button type="button" className={className} disabled={disabled || busy} onClick={() => setOpen(true)}>
        {label}
      </button>
      <dialog ref={dialog} onClose={() => setOpen(false)} aria-label="Confirm">
        <p>{question}</p>
        <div className="row end">
          <button type="button" ref={cancel} onClick={() => setOpen(false)}>
            Cancel
          </button>
          <button
            type="button"
            className="danger"
            disabled={busy}
            onClick={async () => {
              setBusy(true);
              try {
                await onConfirm();
              } finally {
                setBusy(false);
                setOpen(false);
              }
            }}
          >
            {confirmLabel}
          </button>
        </div>
      </dialog>
    </>
  );
}

// Keyboard focus for a modal dialog: it takes the focus when it opens (the
// element `initial` names, else its first focusable one), Tab and Shift+Tab
// cycle within it, Escape closes it (onClose), and the focus goes back to
// where it was when the dialog opened.
import { useEffect } from 'react';

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), '
  + 'textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

// The element Tab moves to from the one focused (backward: Shift+Tab),
// among the dialog's focusable ones in order; wraps around at either end.
// null when the dialog has none (the focus then stays where it is).
export function nextFocus(focusables, current, backward) {
  const n = focusables.length;
  if (n === 0) return null;
  const i = focusables.indexOf(current);
  if (i < 0) return backward ? focusables[n - 1] : focusables[0];
  return focusables[(i + (backward ? n - 1 : 1)) % n];
}

export function useFocusTrap(ref, onClose, initial) {
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return undefined;
    const opener = document.activeElement;
    const focusables = () => [...dialog.querySelectorAll(FOCUSABLE)].filter((e) => e.getClientRects().length > 0);
    (initial?.current || focusables()[0] || dialog).focus();
    const onKey = (e) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        onClose();
      } else if (e.key === 'Tab') {
        const next = nextFocus(focusables(), document.activeElement, e.shiftKey);
        e.preventDefault();
        next?.focus();
      }
    };
    // Focus that leaves by other means (a click outside, a script) comes back.
    const onFocusIn = (e) => {
      if (!dialog.contains(e.target)) (focusables()[0] || dialog).focus();
    };
    document.addEventListener('keydown', onKey);
    document.addEventListener('focusin', onFocusIn);
    return () => {
      document.removeEventListener('keydown', onKey);
      document.removeEventListener('focusin', onFocusIn);
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
    };
  }, [ref, onClose, initial]);
}

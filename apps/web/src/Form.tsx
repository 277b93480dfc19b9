import { useId, useState, type ReactNode, type SyntheticEvent } from "react";

import { ApiError, messageOf, type FieldErrors } from "./api";
import { errorFor } from "./Field";

export interface Submission {
  fields: FieldErrors; // the last 422's field errors, shown under their fields
  error: string | null; // what went wrong, for the whole form
  busy: boolean; // a submit is under way: its button is disabled
  onSubmit: (event: SyntheticEvent) => void;
}

/** A form's submit: `check` may refuse at once (its message becomes the error, nothing is
 * sent); else `work` runs with the button disabled, and what it throws becomes the error and,
 * for an API 422, the field errors. */
function useSubmission(work: () => Promise<void>, check?: () => string | null): Submission {
  const [fields, setFields] = useState<FieldErrors>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function run(): Promise<void> {
    const refused = check?.() ?? null;
    if (refused !== null) {
      setError(refused);
      return;
    }
    setBusy(true);
    setFields({});
    setError(null);
    try {
      await work();
    } catch (caught) {
      if (caught instanceof ApiError) setFields(caught.fields);
      setError(messageOf(caught));
    } finally {
      setBusy(false);
    }
  }

  return {
    fields,
    error,
    busy,
    onSubmit: (event) => {
      event.preventDefault();
      void run();
    },
  };
}

/** The props that tie a TextField or SelectField to one value of a form's draft. */
export interface Bound<V> {
  id: string;
  error: string | undefined;
  value: V;
  onChange: (value: V) => void;
}

export interface FormState<D> {
  draft: D;
  setDraft: (next: (draft: D) => D) => void;
  /** Bind a field to `draft[name]`; its API errors are those at `errorAt` (default: name). */
  field: <K extends keyof D & string>(name: K, errorAt?: string) => Bound<D[K]>;
  submission: Submission;
}

/** A form's values as one draft object, its fields bound to them, and its submit (see
 * useSubmission; `work` and `check` get the draft as it is when the form is sent, and `work`
 * may set the next one, e.g. clear it once it was accepted). */
export function useForm<D extends object>(
  initial: D | (() => D),
  work: (draft: D, setDraft: FormState<D>["setDraft"]) => Promise<void>,
  check?: (draft: D) => string | null,
): FormState<D> {
  const uid = useId();
  const [draft, setDraft] = useState<D>(initial);
  const submission = useSubmission(
    () => work(draft, setDraft),
    check && (() => check(draft)),
  );
  const field = <K extends keyof D & string>(name: K, errorAt: string = name): Bound<D[K]> => ({
    id: `${uid}-${name}`,
    error: errorFor(submission.fields, errorAt),
    value: draft[name],
    onChange: (value) => {
      setDraft((d) => ({ ...d, [name]: value }));
    },
  });
  return { draft, setDraft, field, submission };
}

type Labelled = { "aria-label": string } | { "aria-labelledby": string };

type FormCardProps = Labelled & {
  submission: Submission;
  submitLabel: string;
  className?: string; // beside "card"
  showError?: boolean; // false: the form shows `submission.error` itself (e.g. under its field)
  extraActions?: ReactNode; // after the submit button
  children: ReactNode;
};

/** A form on a card: its fields, the form-level error, then the submit button. Validation is
 * the API's (noValidate), so its messages are the ones shown. */
export function FormCard({
  submission,
  submitLabel,
  className,
  showError = true,
  extraActions,
  children,
  ...labelled
}: FormCardProps) {
  return (
    <form
      className={className ? `card ${className}` : "card"}
      {...labelled}
      onSubmit={submission.onSubmit}
      noValidate
    >
      {children}
      {showError && submission.error ? (
        <p className="form-error" role="alert">
          {submission.error}
        </p>
      ) : null}
      <div className="actions">
        <button type="submit" className="primary" disabled={submission.busy}>
          {submitLabel}
        </button>
        {extraActions}
      </div>
    </form>
  );
}

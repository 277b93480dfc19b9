import type { ReactNode } from "react";

interface FieldProps {
  id: string;
  label: string;
  error?: string | undefined;
  hint?: string;
  children: (props: {
    id: string;
    "aria-invalid": boolean;
    "aria-describedby": string | undefined;
  }) => ReactNode;
}

/** A labelled control with its hint and its API field error right below it. */
export function Field({ id, label, error, hint, children }: FieldProps) {
  const described = [hint ? `${id}-hint` : null, error ? `${id}-error` : null]
    .filter(Boolean)
    .join(" ");
  return (
    <div className={error ? "field field-invalid" : "field"}>
      <label htmlFor={id}>{label}</label>
      {children({ id, "aria-invalid": Boolean(error), "aria-describedby": described || undefined })}
      {hint ? (
        <p className="hint" id={`${id}-hint`}>
          {hint}
        </p>
      ) : null}
      {error ? (
        <p className="field-error" id={`${id}-error`} role="alert">
          {error}
        </p>
      ) : null}
    </div>
  );
}

/** The error of a field or of any of its items (`tags.3`). */
export function errorFor(fields: Record<string, string>, name: string): string | undefined {
  if (fields[name]) return fields[name];
  const item = Object.keys(fields).find((k) => k.startsWith(`${name}.`));
  if (item === undefined) return undefined;
  const where = item.slice(name.length + 1).split(".")[0] ?? "";
  const which = /^\d+$/.test(where) ? `item ${Number(where) + 1}` : `"${where}"`;
  return `${fields[item] ?? ""} (${which})`;
}

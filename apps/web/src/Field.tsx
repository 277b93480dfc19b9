import type { InputHTMLAttributes, ReactNode } from "react";

import type { Choice } from "./types";

interface FieldProps {
  id: string;
  label: string;
  error?: string | undefined;
  hint?: string | undefined;
  className?: string | undefined; // beside "field", e.g. "grow" in the task toolbar
  children: (props: {
    id: string;
    "aria-invalid": boolean;
    "aria-describedby": string | undefined;
  }) => ReactNode;
}

/** A labelled control with its hint and its API field error right below it. */
export function Field({ id, label, error, hint, className, children }: FieldProps) {
  const described = [hint ? `${id}-hint` : null, error ? `${id}-error` : null]
    .filter(Boolean)
    .join(" ");
  const classes = ["field", className, error ? "field-invalid" : null].filter(Boolean).join(" ");
  return (
    <div className={classes}>
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

type FieldFrame = Omit<FieldProps, "children">;

type TextFieldProps = FieldFrame &
  Omit<InputHTMLAttributes<HTMLInputElement>, "id" | "value" | "onChange" | "children"> & {
    value: string;
    onChange: (value: string) => void;
    rows?: number; // given: a textarea of that many rows rather than a one-line input
  };

/** A Field holding a text input (any `type`: text, date, password...) or a textarea. */
export function TextField({ id, label, error, hint, className, value, onChange, rows, ...input }: TextFieldProps) {
  return (
    <Field id={id} label={label} error={error} hint={hint} className={className}>
      {(p) =>
        rows === undefined ? (
          <input {...p} {...input} value={value} onChange={(e) => { onChange(e.target.value); }} />
        ) : (
          <textarea {...p} rows={rows} value={value} onChange={(e) => { onChange(e.target.value); }} />
        )
      }
    </Field>
  );
}

/** The "no filter" option of the toolbar's selects. */
export const ANY: Choice<""> = { value: "", label: "Any" };

type SelectFieldProps<T extends string> = FieldFrame & {
  value: T;
  choices: readonly Choice<T>[];
  onChange: (value: T) => void;
};

/** A Field holding a select of `choices`; only their values can come back. */
export function SelectField<T extends string>({ value, choices, onChange, ...frame }: SelectFieldProps<T>) {
  return (
    <Field {...frame}>
      {(p) => (
        <select {...p} value={value} onChange={(e) => { onChange(e.target.value as T); }}>
          {choices.map((c) => (
            <option key={c.value} value={c.value}>
              {c.label}
            </option>
          ))}
        </select>
      )}
    </Field>
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

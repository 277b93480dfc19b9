import { useId, useState, type SyntheticEvent } from "react";

import { ApiError, messageOf, type Api, type FieldErrors } from "./api";
import { errorFor, Field } from "./Field";

interface Pair {
  key: string;
  value: string;
}

/** Send a notification event (category, message, description, key/value fields). */
export function EventForm({ api, onNotice }: { api: Api; onNotice: (m: string) => void }) {
  const uid = useId();
  const [category, setCategory] = useState("");
  const [message, setMessage] = useState("");
  const [description, setDescription] = useState("");
  const [pairs, setPairs] = useState<Pair[]>([{ key: "", value: "" }]);
  const [fields, setFields] = useState<FieldErrors>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  function setPair(index: number, change: Partial<Pair>): void {
    setPairs((all) => all.map((p, i) => (i === index ? { ...p, ...change } : p)));
  }

  async function submit(event: SyntheticEvent): Promise<void> {
    event.preventDefault();
    setBusy(true);
    setFields({});
    setError(null);
    try {
      const extra: Record<string, string> = {};
      for (const { key, value } of pairs) if (key.trim()) extra[key.trim()] = value;
      const accepted = await api.sendEvent({
        category,
        message,
        description: description.trim() ? description : null,
        fields: extra,
      });
      onNotice(`Event accepted (${accepted.id.slice(0, 8)}).`);
      setMessage("");
      setDescription("");
    } catch (caught) {
      if (caught instanceof ApiError) setFields(caught.fields);
      setError(messageOf(caught));
    } finally {
      setBusy(false);
    }
  }

  const id = (name: string) => `${uid}-${name}`;
  return (
    <form
      className="card"
      aria-label="Send an event"
      onSubmit={(e) => {
        void submit(e);
      }}
      noValidate
    >
      <h3>Send an event</h3>
      <div className="form-grid two">
        <Field id={id("category")} label="Category" error={errorFor(fields, "category")}>
          {(p) => (
            <input
              {...p}
              placeholder="signup"
              value={category}
              onChange={(e) => { setCategory(e.target.value); }}
            />
          )}
        </Field>
        <Field id={id("message")} label="Message" error={errorFor(fields, "message")}>
          {(p) => (
            <input
              {...p}
              placeholder="New user signed up"
              value={message}
              onChange={(e) => { setMessage(e.target.value); }}
            />
          )}
        </Field>
      </div>
      <Field id={id("description")} label="Description" error={errorFor(fields, "description")}>
        {(p) => (
          <textarea
            {...p}
            rows={2}
            value={description}
            onChange={(e) => { setDescription(e.target.value); }}
          />
        )}
      </Field>
      <fieldset className="pairs">
        <legend>Fields</legend>
        {pairs.map((pair, index) => (
          <div className="pair" key={index}>
            <input
              aria-label={`Field ${index + 1} name`}
              placeholder="name"
              value={pair.key}
              onChange={(e) => { setPair(index, { key: e.target.value }); }}
            />
            <input
              aria-label={`Field ${index + 1} value`}
              placeholder="value"
              value={pair.value}
              onChange={(e) => { setPair(index, { value: e.target.value }); }}
            />
            <button
              type="button"
              aria-label={`Remove field ${index + 1}`}
              onClick={() => { setPairs((all) => all.filter((_, i) => i !== index)); }}
            >
              ×
            </button>
          </div>
        ))}
        <button type="button" className="link" onClick={() => { setPairs((all) => [...all, { key: "", value: "" }]); }}>
          Add field
        </button>
        {errorFor(fields, "fields") ? (
          <p className="field-error" role="alert">
            {errorFor(fields, "fields")}
          </p>
        ) : null}
      </fieldset>
      {error ? (
        <p className="form-error" role="alert">
          {error}
        </p>
      ) : null}
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          Send event
        </button>
      </div>
    </form>
  );
}

import { useId, useState } from "react";

import type { Api } from "./api";
import { errorFor, TextField } from "./Field";
import { FormCard, useSubmission } from "./Form";

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

  function setPair(index: number, change: Partial<Pair>): void {
    setPairs((all) => all.map((p, i) => (i === index ? { ...p, ...change } : p)));
  }

  const submission = useSubmission(async () => {
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
  });
  const { fields } = submission;

  const id = (name: string) => `${uid}-${name}`;
  return (
    <FormCard aria-label="Send an event" submission={submission} submitLabel="Send event">
      <h3>Send an event</h3>
      <div className="form-grid two">
        <TextField
          id={id("category")}
          label="Category"
          error={errorFor(fields, "category")}
          placeholder="signup"
          value={category}
          onChange={setCategory}
        />
        <TextField
          id={id("message")}
          label="Message"
          error={errorFor(fields, "message")}
          placeholder="New user signed up"
          value={message}
          onChange={setMessage}
        />
      </div>
      <TextField
        id={id("description")}
        label="Description"
        error={errorFor(fields, "description")}
        rows={2}
        value={description}
        onChange={setDescription}
      />
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
    </FormCard>
  );
}

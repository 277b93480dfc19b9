import { useState } from "react";

import type { Api } from "./api";
import { errorFor, TextField } from "./Field";
import { FormCard, useForm } from "./Form";

interface Pair {
  key: string;
  value: string;
}

/** Send a notification event (category, message, description, key/value fields). */
export function EventForm({ api, onNotice }: { api: Api; onNotice: (m: string) => void }) {
  const [pairs, setPairs] = useState<Pair[]>([{ key: "", value: "" }]);

  function setPair(index: number, change: Partial<Pair>): void {
    setPairs((all) => all.map((p, i) => (i === index ? { ...p, ...change } : p)));
  }

  const form = useForm({ category: "", message: "", description: "" }, async (draft, setDraft) => {
    const extra: Record<string, string> = {};
    for (const { key, value } of pairs) if (key.trim()) extra[key.trim()] = value;
    const accepted = await api.sendEvent({
      ...draft,
      description: draft.description.trim() ? draft.description : null,
      fields: extra,
    });
    onNotice(`Event accepted (${accepted.id.slice(0, 8)}).`);
    setDraft((d) => ({ ...d, message: "", description: "" }));
  });
  const fieldsError = errorFor(form.submission.fields, "fields");

  return (
    <FormCard aria-label="Send an event" submission={form.submission} submitLabel="Send event">
      <h3>Send an event</h3>
      <div className="form-grid two">
        <TextField label="Category" placeholder="signup" {...form.field("category")} />
        <TextField label="Message" placeholder="New user signed up" {...form.field("message")} />
      </div>
      <TextField label="Description" rows={2} {...form.field("description")} />
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
        {fieldsError ? (
          <p className="field-error" role="alert">
            {fieldsError}
          </p>
        ) : null}
      </fieldset>
    </FormCard>
  );
}

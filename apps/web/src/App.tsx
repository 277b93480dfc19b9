import { useCallback, useEffect, useMemo, useRef, useState } from "react";

import { Api } from "./api";
import { EventForm } from "./EventForm";
import { TextField } from "./Field";
import { FormCard, useForm } from "./Form";
import { LiveFeed } from "./LiveFeed";
import { forgetKey, storedKey, storeKey } from "./session";
import { openStream, type StreamState } from "./stream";
import { Tasks } from "./Tasks";
import type { Activity } from "./types";

const FEED_LIMIT = 200;

function SignIn({ onSignedIn, notice }: { onSignedIn: (key: string) => void; notice: string | null }) {
  const form = useForm(
    { key: "" },
    async ({ key }) => {
      const candidate = key.trim();
      // Proves the key before anything else.
      await new Api(candidate).listTasks(new URLSearchParams({ limit: "1" }));
      onSignedIn(candidate);
    },
    ({ key }) => (key.trim() ? null : "Enter an API key."),
  );

  return (
    <main className="signin">
      <FormCard
        aria-labelledby="signin-heading"
        submission={form.submission}
        submitLabel="Sign in"
        showError={false}
      >
        <h1 id="signin-heading">Events console</h1>
        <p>Sign in with an API key from <code>events-api create-key</code>.</p>
        {notice ? <p className="notice">{notice}</p> : null}
        <TextField
          label="API key"
          hint="Kept in this tab only (sessionStorage), sent only in the Authorization header."
          type="password"
          autoComplete="off"
          spellCheck={false}
          {...form.field("key")}
          id="api-key"
          error={form.submission.error ?? undefined} // every sign-in error is about the key
        />
      </FormCard>
    </main>
  );
}

function Console({ apiKey, onSignOut }: { apiKey: string; onSignOut: (why?: string) => void }) {
  const api = useMemo(() => new Api(apiKey), [apiKey]);
  const [items, setItems] = useState<Activity[]>([]);
  const [state, setState] = useState<StreamState>("connecting");
  const [detail, setDetail] = useState<string | undefined>(undefined);
  const [taskChanges, setTaskChanges] = useState(0);
  const [notice, setNotice] = useState("");
  const noticeTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  const announce = useCallback((message: string) => {
    setNotice(message);
    clearTimeout(noticeTimer.current);
    noticeTimer.current = setTimeout(() => { setNotice(""); }, 6000);
  }, []);

  useEffect(() => {
    return openStream(api.authorization, {
      onActivity: (activity) => {
        setItems((all) =>
          [activity, ...all.filter((a) => a.id !== activity.id)].slice(0, FEED_LIMIT),
        );
        if (activity.type.startsWith("task.")) setTaskChanges((n) => n + 1);
      },
      onStatus: (id, status) => {
        setItems((all) => all.map((a) => (a.id === id ? { ...a, status } : a)));
      },
      onState: (next, why) => {
        setState(next);
        setDetail(why);
      },
      onReset: () => {
        setItems([]);
        setTaskChanges((n) => n + 1);
      },
      onUnauthorized: () => { onSignOut("The API key is no longer accepted. Sign in again."); },
    });
  }, [api, onSignOut]);

  return (
    <>
      <header className="topbar">
        <h1>Events console</h1>
        <div className="topbar-right">
          <span className="signed-in">Signed in</span>
          <button type="button" onClick={() => { onSignOut(); }}>
            Sign out
          </button>
        </div>
      </header>
      <p className="announcer" role="status" aria-live="polite">
        {notice}
      </p>
      <main className="layout">
        <Tasks api={api} changes={taskChanges} onNotice={announce} />
        <div className="side">
          <EventForm api={api} onNotice={announce} />
          <LiveFeed items={items} state={state} detail={detail} />
        </div>
      </main>
    </>
  );
}

export function App() {
  const [apiKey, setApiKey] = useState<string | null>(() => storedKey());
  const [notice, setNotice] = useState<string | null>(null);

  const signIn = useCallback((key: string) => {
    storeKey(key);
    setNotice(null);
    setApiKey(key);
  }, []);
  const signOut = useCallback((why?: string) => {
    forgetKey();
    setNotice(why ?? null);
    setApiKey(null);
  }, []);

  return apiKey === null ? (
    <SignIn onSignedIn={signIn} notice={notice} />
  ) : (
    <Console apiKey={apiKey} onSignOut={signOut} />
  );
}

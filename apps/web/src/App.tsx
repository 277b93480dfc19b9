import { useCallback, useEffect, useMemo, useRef, useState, type SyntheticEvent } from "react";

import { Api, messageOf } from "./api";
import { EventForm } from "./EventForm";
import { LiveFeed } from "./LiveFeed";
import { forgetKey, storedKey, storeKey } from "./session";
import { openStream, type StreamState } from "./stream";
import { Tasks } from "./Tasks";
import type { Activity } from "./types";

const FEED_LIMIT = 200;

function SignIn({ onSignedIn, notice }: { onSignedIn: (key: string) => void; notice: string | null }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: SyntheticEvent): Promise<void> {
    event.preventDefault();
    const candidate = key.trim();
    if (!candidate) {
      setError("Enter an API key.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      // Proves the key before anything else.
      await new Api(candidate).listTasks(new URLSearchParams({ limit: "1" }));
      onSignedIn(candidate);
    } catch (caught) {
      setError(messageOf(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="signin">
      <form
        className="card"
        aria-labelledby="signin-heading"
        onSubmit={(e) => {
          void submit(e);
        }}
        noValidate
      >
        <h1 id="signin-heading">Events console</h1>
        <p>Sign in with an API key from <code>events-api create-key</code>.</p>
        {notice ? <p className="notice">{notice}</p> : null}
        <div className={error ? "field field-invalid" : "field"}>
          <label htmlFor="api-key">API key</label>
          <input
            id="api-key"
            type="password"
            autoComplete="off"
            spellCheck={false}
            value={key}
            aria-invalid={Boolean(error)}
            aria-describedby={error ? "api-key-error api-key-hint" : "api-key-hint"}
            onChange={(e) => { setKey(e.target.value); }}
          />
          <p className="hint" id="api-key-hint">
            Kept in this tab only (sessionStorage), sent only in the Authorization header.
          </p>
          {error ? (
            <p className="field-error" id="api-key-error" role="alert">
              {error}
            </p>
          ) : null}
        </div>
        <div className="actions">
          <button type="submit" className="primary" disabled={busy}>
            Sign in
          </button>
        </div>
      </form>
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

// Who is signed in, shared by the shell and the pages.
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';

export type User = { id: string; email: string; name: string | null; role: 'member' | 'admin' };
export const Me = createContext<{ user: User; signOut: () => Promise<void> } | null>(null);
export const useMe = () => useContext(Me)!;

/** Where to return after signing in (a page that needed a session, e.g. a Slack link). */
export const AFTER_SIGN_IN = 'console.afterSignIn';

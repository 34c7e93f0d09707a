// Types of appmixer-auth's index.mjs.

/** A declared user: the fields of the settings file's `[[users]]`. */
export interface FixtureUser {
  /** A fixed 24-hex id tests can rely on; generated when missing. */
  id?: string;
  username: string;
  email: string;
  /** Hashed at bcrypt cost 4; or give `passwordHash`. */
  password?: string;
  /** An existing bcrypt hash (60 characters). */
  passwordHash?: string;
  /** Default `["user"]`. */
  scope?: string[];
  /** Default `"free"`. */
  plan?: string;
  /** Default `false`. */
  isActive?: boolean;
  vendor?: string;
  metadata?: Record<string, unknown>;
}

export interface StartOptions {
  /** Users there from the start; `reset()` brings them back. */
  users?: FixtureUser[];
  /** More environment for the server, e.g. `{ APPMIXER_AUTH__TOKEN_EXPIRATION: '1h' }`. */
  env?: Record<string, string>;
  /** More command-line flags. */
  args?: string[];
  /** Another executable than the one in this package. */
  binary?: string;
  /** Milliseconds to wait for `listening on …` (default 10 000). */
  timeout?: number;
}

export interface Server {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Back to the declared users only, and the clock back to real time. */
  reset(): Promise<void>;
  /** Stops the server and removes its settings file. */
  stop(): Promise<void>;
}

/** The executable shipped in this package. */
export const binary: string;

/** Starts appmixer-auth on a free port with `:memory:` and the fixture API on. */
export function startServer(options?: StartOptions): Promise<Server>;

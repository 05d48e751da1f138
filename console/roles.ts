// Who may do what in the console. Every signed-in operator may look (support is read-only);
// changes are by role. Checked on the server for every state-changing request; pages only hide
// the buttons a role cannot use.

export const consoleRoles = ['support', 'operator', 'finance'] as const
export type ConsoleRole = typeof consoleRoles[number]

export type ConsoleAction =
  /** Resolve a flagged payment (accept the PSP's state, cancel): operators. */
  | 'resolve_flagged'
  /** Replay dead letters to the events topic: operators. */
  | 'replay_dead_letters'
  /** Run a day's reconciliation again: finance. */
  | 'rerun_reconciliation'

const allowed: Readonly<Record<ConsoleRole, ReadonlySet<ConsoleAction>>> = {
  support: new Set(),
  operator: new Set(['resolve_flagged', 'replay_dead_letters']),
  finance: new Set(['rerun_reconciliation']),
}

export function isConsoleRole (value: string): value is ConsoleRole {
  return (consoleRoles as readonly string[]).includes(value)
}

export function mayDo (role: ConsoleRole, action: ConsoleAction): boolean {
  return allowed[role].has(action)
}

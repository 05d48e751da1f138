// What bench/cli.ts needs from a scenario module (bench/scenarios/<name>.ts exports `scenario`).

export interface Scenario {
  name: string
  /** One line for `node bench/cli.ts --help`. */
  summary: string
  /** Full flag reference for `node bench/cli.ts <name> --help`. */
  usage: string
  /** Runs with the arguments after the scenario name; resolves to the process exit code. */
  run: (argv: string[]) => Promise<number>
}

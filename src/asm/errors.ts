/** Error raised for any malformed or unsupported assembler input. */
export class AsmError extends Error {
  readonly line: number;
  readonly col: number;
  readonly detail: string;
  constructor(line: number, col: number, detail: string) {
    super(`line ${line}, col ${col}: ${detail}`);
    this.name = "AsmError";
    this.line = line;
    this.col = col;
    this.detail = detail;
  }
}

/** Thrown inside a line before the line number is known; `x86.ts` converts it to AsmError. */
export class ColError extends Error {
  readonly col: number;
  constructor(col: number, detail: string) {
    super(detail);
    this.col = col;
  }
}

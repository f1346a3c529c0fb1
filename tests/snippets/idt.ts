/**
 * Guest-side helpers (assembler source) for snippets that install their own
 * exception handlers: the guest writes an IDT/IVT entry at run time and loads
 * IDTR itself, so the handler can record the error code, CR2 and the saved
 * instruction pointer — independent of the environment's reporting stubs.
 */

/** The IDT the long/protected-mode helpers build (zeroed RAM at start). */
export const GUEST_IDT = 0x30000;
/** Code selectors of the environment's GDT (createVmWithOneVcpu). */
export const SEL_CODE64 = 0x08, SEL_CODE32 = 0x18;

/** 64-bit: point vector `v` at `label` (interrupt gate, DPL 0) and load IDTR (limit 4095). */
export function gate64(v: number, label: string): string {
  const at = GUEST_IDT + 16 * v;
  return [
    `mov rax, ${label}`,
    `mov [${at}], ax`,
    `mov word [${at + 2}], ${SEL_CODE64}`,
    `mov word [${at + 4}], 0x8e00`,
    "shr rax, 16",
    `mov [${at + 6}], ax`,
    "shr rax, 16",
    `mov [${at + 8}], eax`,
    `mov dword [${at + 12}], 0`,
    `mov word [${GUEST_IDT - 16}], 4095`,
    `mov qword [${GUEST_IDT - 14}], ${GUEST_IDT}`,
    `lidt [${GUEST_IDT - 16}]`,
  ].join("\n");
}

/** 32-bit: point vector `v` at `label` (32-bit interrupt gate) and load IDTR (limit 2047). */
export function gate32(v: number, label: string): string {
  const at = GUEST_IDT + 8 * v;
  return [
    `mov eax, ${label}`,
    `mov [${at}], ax`,
    `mov word [${at + 2}], ${SEL_CODE32}`,
    `mov word [${at + 4}], 0x8e00`,
    "shr eax, 16",
    `mov [${at + 6}], ax`,
    `mov word [${GUEST_IDT - 16}], 2047`,
    `mov dword [${GUEST_IDT - 14}], ${GUEST_IDT}`,
    `lidt [${GUEST_IDT - 16}]`,
  ].join("\n");
}

/** Real mode: IVT entry `v` = 0:`label` (the code is at CS = 0). */
export function ivt(v: number, label: string): string {
  return `mov word [${4 * v}], ${label}\nmov word [${4 * v + 2}], 0`;
}

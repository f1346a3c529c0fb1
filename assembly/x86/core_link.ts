// Where System gets Core's entry points (step/stepMany/breakLoop from decode.ts,
// lazy flags from flags.ts). step/stepMany point at System's temporary shim until
// Core's decode.ts builds.
export { step, stepFast, stepMany, breakLoop, instructionsInFlight } from "./decode";
export { getFlags, setFlags, flagsIn, flagsOut } from "./flags";

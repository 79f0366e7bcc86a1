export * from "./types.ts";
export * from "./engine.ts";
export { expandTemplate, expandAll, templateProblem } from "./template.ts";
export { matchLabels, matchLabelValue } from "./labels.ts";
export { PRESET_ROLES } from "./presets.ts";

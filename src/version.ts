/** Replaced at bundle time for the single binary; read from here everywhere else. */
export const VERSION = "0.2.0";

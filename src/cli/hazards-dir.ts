import { fileURLToPath } from 'node:url';

/** The hazard files that ship with guestmem (the package's designs/hazards/). */
export const HAZARDS_DIR = fileURLToPath(new URL('../../../designs/hazards/', import.meta.url));

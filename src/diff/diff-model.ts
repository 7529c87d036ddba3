/** The generator's view of a sequence: the names bound so far on both sides, to aim references at live objects. */
export interface DiffModel {
  gmems: string[];
  maps: string[];
  fds: string[];
  vcpuLoaded: boolean;
  counter: number;
}

export const emptyDiffModel = (): DiffModel => ({ gmems: [], maps: [], fds: [], vcpuLoaded: false, counter: 0 });

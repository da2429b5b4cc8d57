# Instructions per function of each trace trace.py wrote, from the image's map (RVAs); with --listing, the first
# trace's instructions with their disassembly (objdump). Usage: summarize.py TRACE MAP IMAGE [--listing]
import bisect
import collections
import re
import subprocess
import sys

trace_file, map_file, image = sys.argv[1:4]
listing = "--listing" in sys.argv
preferred = 0x140000000   # the image's preferred base in the map (lld-link /base default for EFI)
symbols = []
for line in open(map_file):
    m = re.match(r"\s*[0-9a-f]{4}:[0-9a-f]{8}\s+(\S+)\s+([0-9a-f]{16})", line)
    if m:
        symbols.append((int(m.group(2), 16) - preferred, m.group(1)))
symbols.sort()
starts = [a for a, _ in symbols]


def name(rva):
    i = bisect.bisect_right(starts, rva) - 1
    return symbols[i][1] if i >= 0 else "?"


traces = []
for line in open(trace_file):
    if line.startswith("TRACE"):
        traces.append([])
    else:
        traces[-1].append(int(line, 16))
print("instructions per trace:", [len(t) for t in traces])
for function, count in collections.Counter(name(rva) for rva in traces[0]).most_common():
    print("%6d  %s" % (count, function))
if listing:
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", image], capture_output=True, text=True).stdout
    disassembly = {}
    for line in text.splitlines():
        m = re.match(r"\s+([0-9a-f]+):\s+(.*)", line)
        if m:
            disassembly[int(m.group(1), 16) - preferred] = m.group(2)
    last = None
    for rva in traces[0]:
        if name(rva) != last:
            last = name(rva)
            print("== " + last)
        print("   %x  %s" % (rva, disassembly.get(rva, "?")))

using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using Vigil.Hypervisor.Core;
using Xunit;
using static Vigil.Tests.Hypervisor.MtrrRaw;

namespace Vigil.Tests.Hypervisor;

/// <summary>
/// What the fake CPUs did and will do: kicks and local invalidations recorded, and on every pause of a waiting
/// CPU the kicked CPUs answer (acknowledge) unless the test holds them back.
/// </summary>
internal sealed class FakeCpuBoard
{
    public ConcurrentQueue<(uint Cpu, uint Generation)> Kicks { get; } = new();

    public ConcurrentQueue<uint> Invalidations { get; } = new();

    /// <summary>Called on every pause with the pausing CPU; the default answers every kick of another CPU.</summary>
    public Action<uint>? OnPause { get; set; }

    /// <summary>CPUs that never answer a kick (stuck, or not running).</summary>
    public HashSet<uint> Silent { get; } = [];

    public int Pauses;

    public NestedMapService<EptFormat, PageArena.Pages> Ept;

    public NestedMapService<NptFormat, PageArena.Pages> Npt;

    public TableKind Kind { get; set; }

    public uint Generation => Kind == TableKind.Ept ? Ept.Generation : Npt.Generation;

    /// <summary>CPU <paramref name="cpu"/> passes its exit path (acknowledges).</summary>
    public void Exit(uint cpu)
    {
        var cpus = new FakeCpus(this, cpu);
        if (Kind == TableKind.Ept) Ept.Acknowledge(ref cpus, cpu);
        else Npt.Acknowledge(ref cpus, cpu);
    }

    /// <summary>Every kicked CPU but <paramref name="self"/> and the silent ones exits.</summary>
    public void AnswerKicks(uint self)
    {
        foreach ((uint cpu, _) in Kicks)
        {
            if (cpu != self && !Silent.Contains(cpu)) Exit(cpu);
        }
    }
}

/// <summary>INestedMapCpus over a <see cref="FakeCpuBoard"/>, as seen by CPU <c>Self</c>.</summary>
internal readonly unsafe struct FakeCpus(FakeCpuBoard board, uint self) : INestedMapCpus
{
    public uint Self => self;

    public bool TryLock(uint* word) => Interlocked.CompareExchange(ref *word, 1u, 0u) == 0;

    public void Unlock(uint* word) => Volatile.Write(ref *word, 0u);

    public void Fence() => Interlocked.MemoryBarrier();

    public void Kick(uint cpu) => board.Kicks.Enqueue((cpu, board.Generation));

    public void InvalidateLocal(uint cpu) => board.Invalidations.Enqueue(cpu);

    public void Pause()
    {
        Interlocked.Increment(ref board.Pauses);
        if (board.OnPause != null) board.OnPause(self);
        else board.AnswerKicks(self);
        Thread.Yield();
    }
}

/// <summary>
/// The nested-map service over maps built by NestedMap in unmanaged memory, walked by <see cref="TableWalker"/>
/// as the hardware would, with fake CPUs: large pages split with every 4 KiB translation, type and access kept,
/// unmapped before the new table is linked, every active CPU invalidating and acknowledging before a change is
/// done, and changes serialized.
/// </summary>
public sealed unsafe class NestedMapServiceTests : IDisposable
{
    private const ulong Page = 0x1000;
    private const ulong TwoMiB = 0x20_0000;

    private readonly List<IntPtr> _blocks = [];
    private readonly List<PageArena> _arenas = [];

    public void Dispose()
    {
        foreach (IntPtr block in _blocks) NativeMemory.Free((void*)block);
        foreach (PageArena arena in _arenas) arena.Dispose();
    }

    /// <summary>A map of [0, 8 GiB) in the PC's memory types (1 GiB pages from 4 GiB up, UC at 3-4 GiB), the service over it.</summary>
    private (FakeCpuBoard Board, PageArena Arena, ulong Root) Subject(TableKind kind, uint cpus = 4, uint tables = 8, ulong budget = 100_000)
    {
        var arena = new PageArena(64);
        _arenas.Add(arena);
        var pages = arena.Source;
        var board = new FakeCpuBoard { Kind = kind };
        void* block = NativeMemory.AllocZeroed((nuint)NestedMapService.BytesFor(cpus, tables));
        _blocks.Add((IntPtr)block);
        ulong root;
        if (kind == TableKind.Ept)
        {
            var map = new NestedMap<EptFormat>(default);
            Assert.True(map.Build(ref pages, 8 * GiB, Pc(), allow1GiB: true));
            root = map.Root;
            Assert.True(board.Ept.Initialize(default, pages, root, map.Limit, block, cpus, tables, budget));
        }
        else
        {
            var map = new NestedMap<NptFormat>(default);
            Assert.True(map.Build(ref pages, 8 * GiB, Pc(), allow1GiB: true));
            root = map.Root;
            Assert.True(board.Npt.Initialize(default, pages, root, map.Limit, block, cpus, tables, budget));
        }
        for (uint i = 0; i < cpus; i++)
        {
            var c = new FakeCpus(board, i);
            if (kind == TableKind.Ept) board.Ept.Activate(ref c, i);
            else board.Npt.Activate(ref c, i);
        }
        while (board.Invalidations.TryDequeue(out _))
        {
        }
        return (board, arena, root);
    }

    private static NestedMapResult Protect(FakeCpuBoard board, uint self, ulong rangeBase, ulong size, PageAccess access)
    {
        var cpus = new FakeCpus(board, self);
        return board.Kind == TableKind.Ept
            ? board.Ept.Protect(ref cpus, self, rangeBase, size, access)
            : board.Npt.Protect(ref cpus, self, rangeBase, size, access);
    }

    private static uint TablesLeft(FakeCpuBoard board) => board.Kind == TableKind.Ept ? board.Ept.TablesLeft : board.Npt.TablesLeft;

    private static bool IsSpurious(FakeCpuBoard board, ulong gpa, PageAccess needed)
        => board.Kind == TableKind.Ept ? board.Ept.IsSpurious(gpa, needed) : board.Npt.IsSpurious(gpa, needed);

    /// <summary>Read, write and execute as TableWalker reports them, in every format.</summary>
    private const int FullAccess = 7;

    private static int NoAccessWalk => -1;

    /// <summary>Translation, type and access of every 4 KiB page of [from, to) (access -1: not present).</summary>
    private static (ulong Physical, int Type, int Access)[] Snapshot(PageArena arena, TableKind kind, ulong root, ulong from, ulong to)
    {
        var result = new (ulong, int, int)[(to - from) / Page];
        for (ulong a = from, i = 0; a < to; a += Page, i++)
        {
            Translation t = TableWalker.Walk(arena, kind, root, a);
            result[i] = t.Present ? (t.Physical, t.TypeBits, t.Access) : (a, (int)((t.Entry >> 3) & 7), NoAccessWalk);
        }
        return result;
    }

    public static TheoryData<TableKind> Kinds => new() { TableKind.Ept, TableKind.Npt };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Splitting_a_1GiB_page_keeps_every_4K_translation_and_changes_only_the_range(TableKind kind)
    {
        (FakeCpuBoard board, PageArena arena, ulong root) = Subject(kind);
        ulong gigabyte = 5 * GiB;   // WB, one 1 GiB leaf
        Assert.Equal(3, TableWalker.Walk(arena, kind, root, gigabyte).Level);
        var before = Snapshot(arena, kind, root, gigabyte, gigabyte + GiB);
        ulong rangeBase = gigabyte + (7 * TwoMiB) + (3 * Page);
        ulong size = 5 * Page;
        uint tablesBefore = TablesLeft(board);

        Assert.Equal(NestedMapResult.Done, Protect(board, 0, rangeBase, size, PageAccess.Read));

        Assert.Equal(tablesBefore - 2, TablesLeft(board));   // one PD, one PT: both ends in one 2 MiB page
        var after = Snapshot(arena, kind, root, gigabyte, gigabyte + GiB);
        for (int i = 0; i < before.Length; i++)
        {
            ulong address = gigabyte + ((ulong)i * Page);
            Assert.Equal(address, after[i].Physical);
            Assert.Equal(before[i].Type, after[i].Type);
            bool inside = address >= rangeBase && address < rangeBase + size;
            Assert.Equal(inside ? 1 : before[i].Access, after[i].Access);
        }
        // 4 KiB pages only where needed: the 2 MiB pages beside the range's page stay 2 MiB.
        Assert.Equal(1, TableWalker.Walk(arena, kind, root, rangeBase).Level);
        Assert.Equal(2, TableWalker.Walk(arena, kind, root, gigabyte + (6 * TwoMiB)).Level);
        Assert.Equal(2, TableWalker.Walk(arena, kind, root, gigabyte + (8 * TwoMiB)).Level);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_range_across_two_1GiB_pages_splits_both_ends_and_keeps_the_large_pages_inside(TableKind kind)
    {
        (FakeCpuBoard board, PageArena arena, ulong root) = Subject(kind);
        ulong from = (4 * GiB) + GiB - (3 * TwoMiB) - Page;   // in the 1 GiB page at 4 GiB, 4 KiB before a 2 MiB boundary
        ulong to = (5 * GiB) + (2 * TwoMiB) + (2 * Page);       // in the one at 5 GiB
        var before = Snapshot(arena, kind, root, 4 * GiB, 6 * GiB);

        Assert.Equal(NestedMapResult.Done, Protect(board, 1, from, to - from, PageAccess.None));

        Assert.Equal(8u - 4u, TablesLeft(board));
        var after = Snapshot(arena, kind, root, 4 * GiB, 6 * GiB);
        for (int i = 0; i < before.Length; i++)
        {
            ulong address = (4 * GiB) + ((ulong)i * Page);
            Assert.Equal(before[i].Physical, after[i].Physical);
            Assert.Equal(before[i].Type, after[i].Type);
            Assert.Equal(address >= from && address < to ? NoAccessWalk : before[i].Access, after[i].Access);
        }
        Assert.Equal(2, TableWalker.Walk(arena, kind, root, (5 * GiB) - TwoMiB).Level);   // wholly inside: 2 MiB, not split
        Assert.Equal(2, TableWalker.Walk(arena, kind, root, 5 * GiB).Level);
        Assert.Equal(1, TableWalker.Walk(arena, kind, root, from).Level);
        Assert.Equal(1, TableWalker.Walk(arena, kind, root, to).Level);

        // Restore gives the identity map back exactly (split pages stay split).
        Assert.Equal(NestedMapResult.Done, Protect(board, 1, from, to - from, PageAccess.All));
        var restored = Snapshot(arena, kind, root, 4 * GiB, 6 * GiB);
        Assert.Equal(before, restored);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_large_page_is_unmapped_and_invalidated_everywhere_before_its_table_is_linked(TableKind kind)
    {
        (FakeCpuBoard board, PageArena arena, ulong root) = Subject(kind);
        ulong gigabyte = 6 * GiB;
        ulong target = gigabyte + (100 * TwoMiB) + (9 * Page);
        var seen = new List<(uint Generation, Translation Walk, bool Spurious)>();
        board.OnPause = self =>
        {
            seen.Add((board.Generation, TableWalker.Walk(arena, kind, root, gigabyte + Page), IsSpurious(board, gigabyte + Page, PageAccess.Read)));
            board.AnswerKicks(self);
        };
        uint generation = board.Generation;

        Assert.Equal(NestedMapResult.Done, Protect(board, 0, target, Page, PageAccess.Read | PageAccess.Execute));

        // Round 1 (the split): while the others are being waited for, the 1 GiB page is not present at all (no CPU
        // can load a translation for it, large or small), and a fault there is reported spurious.
        (uint g1, Translation w1, bool s1) = seen.Find(s => s.Generation == generation + 1);
        Assert.False(w1.Present);
        Assert.Equal(3, w1.Level);
        Assert.True(s1);
        // Round 2 (the access change): the new tables are linked, the page beside the target has its old access.
        (uint g2, Translation w2, bool s2) = seen.Find(s => s.Generation == generation + 2);
        Assert.Equal(generation + 2, g2);
        Assert.True(w2.Present);
        Assert.Equal(2, w2.Level);
        Assert.Equal(gigabyte + Page, w2.Physical);
        Assert.True(s2);   // the map grants a read there: a fault for it is stale
        Assert.Equal(generation + 2, board.Generation);
        Assert.False(IsSpurious(board, target, PageAccess.Write));
        Assert.True(IsSpurious(board, target, PageAccess.Read));
        Assert.Equal(generation + 1, g1);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_change_is_done_only_after_every_active_cpu_acknowledged(TableKind kind)
    {
        (FakeCpuBoard board, PageArena arena, ulong root) = Subject(kind, cpus: 4);
        if (kind == TableKind.Ept) board.Ept.Deactivate(3);
        else board.Npt.Deactivate(3);
        int pausesWhenLastAnswered = -1;
        board.OnPause = self =>
        {
            // CPU 1 answers at once; CPU 2 only after 50 pauses of the waiting CPU.
            foreach ((uint cpu, _) in board.Kicks)
            {
                if (cpu == 1) board.Exit(1);
                if (cpu == 2 && board.Pauses >= 50)
                {
                    if (!(kind == TableKind.Ept ? board.Ept.HasAcknowledged(2) : board.Npt.HasAcknowledged(2))) pausesWhenLastAnswered = board.Pauses;
                    board.Exit(2);
                }
            }
        };
        uint generation = board.Generation;

        Assert.Equal(NestedMapResult.Done, Protect(board, 0, 5 * GiB, Page, PageAccess.Read));

        Assert.Equal(generation + 2, board.Generation);   // split, then access
        Assert.True(pausesWhenLastAnswered >= 50);
        // Each round: CPU 1 and 2 kicked (not the changer, not the inactive CPU 3), every CPU invalidated for it.
        var kicks = board.Kicks.ToArray();
        foreach (uint g in new[] { generation + 1, generation + 2 })
        {
            Assert.Contains((1u, g), kicks);
            Assert.Contains((2u, g), kicks);
            Assert.DoesNotContain((0u, g), kicks);
            Assert.DoesNotContain((3u, g), kicks);
        }
        var invalidations = board.Invalidations.ToArray();
        Assert.Equal(2, Array.FindAll(invalidations, c => c == 0).Length);
        Assert.Equal(2, Array.FindAll(invalidations, c => c == 1).Length);
        Assert.Equal(2, Array.FindAll(invalidations, c => c == 2).Length);
        Assert.DoesNotContain(3u, invalidations);
        for (uint cpu = 0; cpu < 3; cpu++) Assert.True(kind == TableKind.Ept ? board.Ept.HasAcknowledged(cpu) : board.Npt.HasAcknowledged(cpu));
        Assert.Equal(1, TableWalker.Walk(arena, kind, root, 5 * GiB).Access);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_cpu_that_never_answers_leaves_the_change_unconfirmed(TableKind kind)
    {
        (FakeCpuBoard board, PageArena arena, ulong root) = Subject(kind, cpus: 2, budget: 1000);
        board.Silent.Add(1);

        Assert.Equal(NestedMapResult.Unconfirmed, Protect(board, 0, 4 * GiB, TwoMiB, PageAccess.None));

        Assert.False(TableWalker.Walk(arena, kind, root, 4 * GiB).Present);   // changed all the same
        Assert.True(board.Pauses > 1000);
        // An acknowledgement without a change in between invalidates nothing.
        board.Exit(1);
        int invalidations = board.Invalidations.Count;
        board.Exit(1);
        Assert.Equal(invalidations, board.Invalidations.Count);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_reserve_too_small_for_the_splits_changes_nothing(TableKind kind)
    {
        (FakeCpuBoard board, PageArena arena, ulong root) = Subject(kind, tables: 1);
        var before = Snapshot(arena, kind, root, 7 * GiB, 8 * GiB);
        uint generation = board.Generation;

        Assert.Equal(NestedMapResult.NoTables, Protect(board, 0, (7 * GiB) + Page, Page, PageAccess.None));   // needs a PD and a PT

        Assert.Equal(before, Snapshot(arena, kind, root, 7 * GiB, 8 * GiB));
        Assert.Equal(generation, board.Generation);
        Assert.Equal(1u, TablesLeft(board));
        Assert.Empty(board.Kicks);
        Assert.Equal(NestedMapResult.OutsideMap, Protect(board, 0, (8 * GiB) - Page, 2 * Page, PageAccess.None));
        Assert.Equal(NestedMapResult.Done, Protect(board, 0, (512 * MiB) + Page, Page, PageAccess.None));   // a 2 MiB page split: one PT
        Assert.Equal(0u, TablesLeft(board));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Changes_are_serialized_and_a_cpu_waiting_for_the_lock_keeps_acknowledging(TableKind kind)
    {
        (FakeCpuBoard board, PageArena arena, ulong root) = Subject(kind, cpus: 2);
        using var holderWaiting = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        int holderThread = -1;
        board.OnPause = self =>
        {
            if (self == 0 && Environment.CurrentManagedThreadId == holderThread && !release.IsSet)
            {
                holderWaiting.Set();
                release.Wait();
            }
            board.AnswerKicks(self);
        };
        ulong first = (4 * GiB) + (3 * Page);
        ulong second = (4 * GiB) + (5 * Page);   // same 2 MiB and 1 GiB page as the first
        NestedMapResult r0 = default, r1 = default;
        var a = new Thread(() =>
        {
            holderThread = Environment.CurrentManagedThreadId;
            r0 = Protect(board, 0, first, Page, PageAccess.Read);
        });
        a.Start();
        Assert.True(holderWaiting.Wait(TimeSpan.FromSeconds(10)));
        uint generation = board.Generation;
        var b = new Thread(() => r1 = Protect(board, 1, second, Page, PageAccess.None));
        b.Start();
        Thread.Sleep(200);

        // CPU 1 spins for the lock: nothing of its change is in the map, and it has answered CPU 0's round meanwhile.
        Assert.True(b.IsAlive);
        Assert.Equal(generation, board.Generation);
        Assert.True(kind == TableKind.Ept ? board.Ept.HasAcknowledged(1) : board.Npt.HasAcknowledged(1));
        Assert.False(TableWalker.Walk(arena, kind, root, 4 * GiB).Present);   // CPU 0's split in progress

        release.Set();
        Assert.True(a.Join(TimeSpan.FromSeconds(10)));
        Assert.True(b.Join(TimeSpan.FromSeconds(10)));
        Assert.Equal(NestedMapResult.Done, r0);
        Assert.Equal(NestedMapResult.Done, r1);
        Assert.Equal(1, TableWalker.Walk(arena, kind, root, first).Access);
        Assert.False(TableWalker.Walk(arena, kind, root, second).Present);
        Assert.Equal(FullAccess, TableWalker.Walk(arena, kind, root, first + Page).Access);
        Assert.Equal(8u - 2u, TablesLeft(board));   // the second change found the page split already
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void The_start_up_check_finds_a_large_page_outside_the_reservation(TableKind kind)
    {
        (FakeCpuBoard board, PageArena arena, ulong root) = Subject(kind);
        ulong Find(ulong from, ulong avoidBase, ulong avoidSize)
            => kind == TableKind.Ept ? board.Ept.FindLargePage(from, avoidBase, avoidSize) : board.Npt.FindLargePage(from, avoidBase, avoidSize);
        Assert.Equal(TwoMiB, Find(1, 0, 0));                             // 0-2 MiB is split by the fixed MTRRs
        Assert.Equal(8 * TwoMiB, Find(TwoMiB, TwoMiB, (6 * TwoMiB) + 1)); // a reservation touching 2 MiB pages 1-7
        Assert.Equal(0UL, Find(8 * GiB, 0, 0));
        Assert.Equal(3, kind == TableKind.Ept ? board.Ept.LeafLevel(5 * GiB) : board.Npt.LeafLevel(5 * GiB));
        Assert.Equal(1, kind == TableKind.Ept ? board.Ept.LeafLevel(0x1000) : board.Npt.LeafLevel(0x1000));
        Assert.Equal(0, kind == TableKind.Ept ? board.Ept.LeafLevel(8 * GiB) : board.Npt.LeafLevel(8 * GiB));
        Assert.Equal(2, TableWalker.Walk(arena, kind, root, 8 * TwoMiB).Level);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void The_start_up_check_splits_one_large_page_with_one_round_and_changes_no_translation(TableKind kind)
    {
        (FakeCpuBoard board, PageArena arena, ulong root) = Subject(kind, cpus: 2);
        var before = Snapshot(arena, kind, root, 16 * MiB, 20 * MiB);
        var cpus = new FakeCpus(board, 0);
        ulong page;
        int level;
        uint rounds;
        NestedMapResult result = kind == TableKind.Ept
            ? board.Ept.StartupCheck(ref cpus, 0, 0, 16 * MiB, out page, out level, out rounds)
            : board.Npt.StartupCheck(ref cpus, 0, 0, 16 * MiB, out page, out level, out rounds);

        Assert.Equal(NestedMapResult.Done, result);
        Assert.Equal(16 * MiB, page);
        Assert.Equal(2, level);
        Assert.Equal(1u, rounds);   // the split; the access did not change
        Assert.Contains((1u, board.Generation), board.Kicks);
        Assert.Equal(1, TableWalker.Walk(arena, kind, root, page).Level);
        Assert.Equal(before, Snapshot(arena, kind, root, 16 * MiB, 20 * MiB));
        Assert.Equal(FullAccess, TableWalker.Walk(arena, kind, root, page + Page).Access);
    }
}

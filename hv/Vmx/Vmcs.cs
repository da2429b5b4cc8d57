// Typed access to the current VMCS (SDM Vol 3C 25.11: VMREAD/VMWRITE by field encoding). Each
// accessor accepts only fields of its width (encoding bits 14:13) and refuses the others, so a
// 16-bit selector is never written as a natural-width value by mistake (KVM does the same).
// The hardware sits behind IVmcsAccess (struct-constrained: no interface dispatch at run time);
// tests pass a fake. Compiled into the hypervisor and into the tests.
namespace Vigil.Hypervisor.Vmx
{
    /// <summary>VMREAD/VMWRITE of the current VMCS; the hardware or a fake.</summary>
    public interface IVmcsAccess
    {
        bool Read(VmcsField field, out ulong value);

        bool Write(VmcsField field, ulong value);

        /// <summary>Called when an accessor of the wrong width was used: a programming error.</summary>
        void WidthMismatch(VmcsField field, VmcsWidth accessorWidth);
    }

    public static class Vmcs
    {
        public static bool Accepts(VmcsField field, VmcsWidth accessorWidth)
            => VmcsFields.Width(field) == accessorWidth && !VmcsFields.IsHighAccess(field);

        public static ushort Read16<T>(ref T vmcs, VmcsField field) where T : struct, IVmcsAccess
            => Check(ref vmcs, field, VmcsWidth.Bits16) && vmcs.Read(field, out ulong v) ? (ushort)v : (ushort)0;

        public static uint Read32<T>(ref T vmcs, VmcsField field) where T : struct, IVmcsAccess
            => Check(ref vmcs, field, VmcsWidth.Bits32) && vmcs.Read(field, out ulong v) ? (uint)v : 0;

        public static ulong Read64<T>(ref T vmcs, VmcsField field) where T : struct, IVmcsAccess
            => Check(ref vmcs, field, VmcsWidth.Bits64) && vmcs.Read(field, out ulong v) ? v : 0;

        public static ulong ReadNatural<T>(ref T vmcs, VmcsField field) where T : struct, IVmcsAccess
            => Check(ref vmcs, field, VmcsWidth.Natural) && vmcs.Read(field, out ulong v) ? v : 0;

        public static bool Write16<T>(ref T vmcs, VmcsField field, ushort value) where T : struct, IVmcsAccess
            => Check(ref vmcs, field, VmcsWidth.Bits16) && vmcs.Write(field, value);

        public static bool Write32<T>(ref T vmcs, VmcsField field, uint value) where T : struct, IVmcsAccess
            => Check(ref vmcs, field, VmcsWidth.Bits32) && vmcs.Write(field, value);

        public static bool Write64<T>(ref T vmcs, VmcsField field, ulong value) where T : struct, IVmcsAccess
            => Check(ref vmcs, field, VmcsWidth.Bits64) && vmcs.Write(field, value);

        public static bool WriteNatural<T>(ref T vmcs, VmcsField field, ulong value) where T : struct, IVmcsAccess
            => Check(ref vmcs, field, VmcsWidth.Natural) && vmcs.Write(field, value);

        private static bool Check<T>(ref T vmcs, VmcsField field, VmcsWidth width) where T : struct, IVmcsAccess
        {
            if (Accepts(field, width)) return true;
            vmcs.WidthMismatch(field, width);
            return false;
        }
    }
}

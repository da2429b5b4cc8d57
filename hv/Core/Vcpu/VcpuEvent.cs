// One event for the guest (an interrupt, NMI or exception), in the layout both vendors share: VMX's
// interruption-information format (SDM Vol 3C 25.8.3, Table 25-17) and SVM's EVENTINJ/EXITINTINFO (APM
// Vol 2 15.20, Figure 15-3) agree on vector 7:0, type 10:8, error code valid 11, valid 31; SVM carries the
// error code in bits 63:32, VMX in a field of its own. Software events (INTn, INT3/INTO, INT1) also carry
// the instruction length VMX needs to inject them (SDM Vol 3C 27.6.1.1).
// Root mode (VMX root / SVM host), on the CPU that exited, interrupts off.
// Compiled twice: into the hypervisor (no runtime) and into the tests.
namespace Vigil.Hypervisor.Core.Vcpu
{
    /// <summary>Interruption types (SDM Vol 3C Table 25-17; APM Vol 2 15.20 uses 0, 2, 3, 4).</summary>
    public enum EventType : byte
    {
        ExternalInterrupt = 0,
        Nmi = 2,
        HardwareException = 3,
        SoftwareInterrupt = 4,
        PrivilegedSoftwareException = 5,
        SoftwareException = 6,
    }

    public struct VcpuEvent
    {
        public const uint ValidBit = 1u << 31;
        public const uint ErrorCodeValidBit = 1u << 11;

        public const byte DebugVector = 1;
        public const byte NmiVector = 2;
        public const byte BreakpointVector = 3;
        public const byte OverflowVector = 4;
        public const byte InvalidOpcode = 6;
        public const byte DoubleFault = 8;
        public const byte InvalidTss = 10;
        public const byte SegmentNotPresent = 11;
        public const byte StackFault = 12;
        public const byte GeneralProtection = 13;
        public const byte PageFault = 14;
        public const byte ControlProtection = 21;

        /// <summary>Vector, type, error-code-valid and valid bits as VMX and SVM encode them (low 32 bits).</summary>
        public uint Info;

        public uint ErrorCode;

        /// <summary>Instruction length of a software event (VMX injects it with the length; 0 otherwise).</summary>
        public int InstructionLength;

        public readonly bool Valid => (Info & ValidBit) != 0;

        public readonly byte Vector => (byte)Info;

        public readonly EventType Type => (EventType)((Info >> 8) & 7);

        public readonly bool HasErrorCode => (Info & ErrorCodeValidBit) != 0;

        /// <summary>Raised by an instruction (INTn, INT3, INTO, INT1): executing the instruction again raises it again.</summary>
        public readonly bool IsSoftware => Type is EventType.SoftwareInterrupt or EventType.PrivilegedSoftwareException or EventType.SoftwareException;

        public static VcpuEvent None => default;

        public static VcpuEvent Exception(byte vector) => new VcpuEvent { Info = ValidBit | ((uint)EventType.HardwareException << 8) | vector };

        public static VcpuEvent Exception(byte vector, uint errorCode)
            => new VcpuEvent { Info = ValidBit | ErrorCodeValidBit | ((uint)EventType.HardwareException << 8) | vector, ErrorCode = errorCode };

        public static VcpuEvent Nmi => new VcpuEvent { Info = ValidBit | ((uint)EventType.Nmi << 8) | NmiVector };

        /// <summary>From the 32-bit information field (VMX) and an error code; bit 12 (NMI unblocking, reserved on entry) dropped.</summary>
        public static VcpuEvent FromInfo(uint info, uint errorCode, int instructionLength)
            => new VcpuEvent { Info = info & ~(1u << 12) & 0x8000_0FFF, ErrorCode = (info & ErrorCodeValidBit) != 0 ? errorCode : 0, InstructionLength = instructionLength };

        /// <summary>From SVM's 64-bit EVENTINJ/EXITINTINFO form (error code in 63:32).</summary>
        public static VcpuEvent FromSvm(ulong value)
            => new VcpuEvent { Info = (uint)value & 0x8000_0FFF, ErrorCode = ((uint)value & ErrorCodeValidBit) != 0 ? (uint)(value >> 32) : 0 };

        /// <summary>
        /// SVM's EXITINTINFO: the event whose delivery the exit interrupted (APM Vol 2 15.7.2). INT3 and INTO come as
        /// exceptions (type 3, vectors 3 and 4) but are raised by an instruction: software exceptions here. QEMU's TCG
        /// (7.2) reports every event it was delivering that is not an INTn as type 3, external interrupts and NMIs
        /// included; an exception's vector is below 32 and never 2, so type 3 with vector 2 is an NMI and type 3 with
        /// a vector of 32 or more an external interrupt (injected back as exceptions they make VMRUN fail: APM Vol 2
        /// 15.20, an exception vector of 2 or above 31 is invalid guest state).
        /// </summary>
        public static VcpuEvent FromSvmInterrupted(ulong exitIntInfo)
        {
            VcpuEvent e = FromSvm(exitIntInfo);
            if (!e.Valid || e.Type != EventType.HardwareException) return e;
            EventType type = e.Vector switch
            {
                BreakpointVector or OverflowVector => EventType.SoftwareException,
                NmiVector => EventType.Nmi,
                >= 32 => EventType.ExternalInterrupt,
                _ => EventType.HardwareException,
            };
            return type == EventType.HardwareException ? e : new VcpuEvent { Info = ValidBit | ((uint)type << 8) | e.Vector };   // none of them has an error code
        }

        /// <summary>SVM's 64-bit EVENTINJ form.</summary>
        public readonly ulong ToSvm() => Valid ? (Info | (HasErrorCode ? (ulong)ErrorCode << 32 : 0)) : 0;

        /// <summary>The exception classes of SDM Vol 3A 6.15 Table 6-4 / APM Vol 2 8.2.9.</summary>
        public readonly ExceptionClass Class
        {
            get
            {
                if (Type != EventType.HardwareException) return ExceptionClass.Benign;
                return Vector switch
                {
                    0 or InvalidTss or SegmentNotPresent or StackFault or GeneralProtection or ControlProtection => ExceptionClass.Contributory,
                    PageFault => ExceptionClass.PageFault,
                    DoubleFault => ExceptionClass.DoubleFault,
                    _ => ExceptionClass.Benign,
                };
            }
        }
    }

    public enum ExceptionClass
    {
        Benign,
        Contributory,
        PageFault,
        DoubleFault,
    }
}

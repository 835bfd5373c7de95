package device

import "fmt"

// More esp_err_t values the device returns.
const (
	ErrFail        = -1     // ESP_FAIL
	ErrFlashOpFail = 0x6001 // ESP_ERR_FLASH_OP_FAIL: the flash failed (power cut)
)

// NodeMCU otaupgrade messages, exactly as otaupgrade.c raises them.
const (
	MsgNoOTAPartition     = "no OTA partition available"
	MsgOutOfMemory        = "out of memory"
	MsgOverwriteRunning   = "can't overrite running firmware" // sic
	MsgOTADataInvalid     = "ota data partition invalid"
	MsgUnconfirmed        = "can't upgrade from unconfirmed firmware"
	MsgOTAError           = "ota error"
	MsgWriteNotPossible   = "write not possible, use otaupgrade.commence() first"
	MsgNotValidImage      = "not a valid ota image"
	MsgNoUpgrade          = "no upgrade in progress"
	MsgEmptyImage         = "empty firmware image"
	MsgValidationFailed   = "validation failed"
	MsgAcceptFailed       = "firmware accept failed"
	MsgNoRollbackFirmware = "no other firmware to roll back to"
	MsgNotRunning         = "device is not running an app" // not NodeMCU: nothing booted
)

var errNames = map[int]string{
	0:                       "ESP_OK",
	ErrFail:                 "ESP_FAIL",
	ErrNoMem:                "ESP_ERR_NO_MEM",
	ErrInvalidArg:           "ESP_ERR_INVALID_ARG",
	ErrInvalidState:         "ESP_ERR_INVALID_STATE",
	ErrInvalidSize:          "ESP_ERR_INVALID_SIZE",
	ErrNotFound:             "ESP_ERR_NOT_FOUND",
	ErrNotSupported:         "ESP_ERR_NOT_SUPPORTED",
	ErrImageInvalid:         "ESP_ERR_IMAGE_INVALID",
	ErrOTAPartitionConflict: "ESP_ERR_OTA_PARTITION_CONFLICT",
	ErrOTASelectInfoInvalid: "ESP_ERR_OTA_SELECT_INFO_INVALID",
	ErrOTAValidateFailed:    "ESP_ERR_OTA_VALIDATE_FAILED",
	ErrOTASmallSecVer:       "ESP_ERR_OTA_SMALL_SEC_VER",
	ErrOTARollbackFailed:    "ESP_ERR_OTA_ROLLBACK_FAILED",
	ErrOTARollbackInvalid:   "ESP_ERR_OTA_ROLLBACK_INVALID_STATE",
	ErrFlashOpFail:          "ESP_ERR_FLASH_OP_FAIL",
}

// ErrName returns esp_err_to_name(code), e.g. "ESP_ERR_OTA_VALIDATE_FAILED".
func ErrName(code int) string {
	if n, ok := errNames[code]; ok {
		return n
	}
	return fmt.Sprintf("ERROR 0x%x", code)
}

// CodeName returns the ESP-IDF name of e.Code.
func (e *Error) CodeName() string { return ErrName(e.Code) }

// Error returns NodeMCU's message followed by the detail, e.g.
// "validation failed: segment 2: checksum mismatch ...".
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func newErr(code int, msg string, cause error) *Error {
	return &Error{Code: code, Message: msg, Err: cause}
}
